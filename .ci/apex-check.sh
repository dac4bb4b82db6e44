#!/usr/bin/env bash
# Checks the Salesforce package under apex/ without a Salesforce org:
#   1. every .cls and .trigger parses with the Apex grammar of @apexdevtools/apex-parser (fails on a syntax error,
#      printing file:line:column);
#   2. every metadata XML file is well-formed;
#   3. the Apex signature test still holds the known-answer vectors of tests/vectors/vectors.json;
#   4. PMD's Apex rules through the Salesforce Code Analyzer v4 (npm @salesforce/sfdx-scanner, its bundled PMD 7,
#      Java 17): fails only on high-severity (normalized severity 1) findings; the others are listed.
# Apex itself cannot be compiled or run here: that needs an org (see apex/README.md, "Verify").
# Tools are installed with npm into APEX_TOOLS_DIR (default ~/.cache/helpdesk-bridge-apex-tools), outside the repo.
# APEX_CHECK_PMD=0 skips step 4.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
apex="$repo/apex"
tools="${APEX_TOOLS_DIR:-${HOME:-/root}/.cache/helpdesk-bridge-apex-tools}"
parser_version="5.2.0"
scanner_version="4.12.0"
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

npm_install() { # dir package@version
    mkdir -p "$1"
    [ -f "$1/package.json" ] || echo '{"name":"apex-tools","private":true}' >"$1/package.json"
    (cd "$1" && npm install --no-save --loglevel=error "$2" >/dev/null)
}
installed_version() { # dir package
    node -e 'try{console.log(require(process.argv[1]+"/node_modules/"+process.argv[2]+"/package.json").version)}catch(e){}' "$1" "$2"
}

echo "== apex-check: Apex syntax (@apexdevtools/apex-parser $parser_version)"
if [ "$(installed_version "$tools/parser" @apexdevtools/apex-parser)" != "$parser_version" ]; then
    npm_install "$tools/parser" "@apexdevtools/apex-parser@$parser_version"
fi
(cd "$repo" && node .ci/apex-parse.mjs "$tools/parser" apex)

echo "== apex-check: metadata XML is well-formed"
python3 - "$apex" <<'PY'
import sys, pathlib, xml.parsers.expat
# expat without namespace processing: Aura markup uses prefixes (aura:, lightning:) it never declares.
root = pathlib.Path(sys.argv[1])
files = sorted(p for p in root.rglob("*") if p.is_file() and (p.name.endswith("-meta.xml") or p.suffix in (".cmp", ".design")))
bad = 0
for p in files:
    try:
        xml.parsers.expat.ParserCreate().Parse(p.read_bytes(), True)
    except xml.parsers.expat.ExpatError as e:
        bad += 1
        print(f"{p.relative_to(root.parent)}:{e.lineno}:{e.offset + 1}: malformed XML: {xml.parsers.expat.ErrorString(e.code)}")
print(f"xml: {len(files)} files checked, {bad} malformed")
sys.exit(1 if bad else 0)
PY

echo "== apex-check: signature vectors of tests/vectors (the Python tests reproduce them too)"
vectors="$repo/tests/vectors/vectors.json"
node - "$vectors" "$apex/force-app/main/default/classes/HelpdeskBridgeSignerTest.cls" <<'JS'
const fs = require("fs");
const [vectorsPath, testPath] = process.argv.slice(2);
const v = JSON.parse(fs.readFileSync(vectorsPath, "utf8")).signed_call;
const apex = fs.readFileSync(testPath, "utf8");
const apexString = (s) => "'" + s.replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "'";
const wanted = {
  secret: apexString(v.secret),
  timestamp: String(v.timestamp) + "L",
  body: apexString(v.body),
  target: apexString(v.target),
  signature: apexString(v["X-Bridge-Signature"]),
  "get target": apexString(v.get_example.target),
  "get signature": apexString(v.get_example["X-Bridge-Signature"]),
};
const missing = Object.entries(wanted).filter(([, text]) => !apex.includes(text));
for (const [name, text] of missing) console.log(`${testPath}: vector ${name} ${text} is not in the Apex test`);
console.log(`vectors: ${Object.keys(wanted).length - missing.length}/${Object.keys(wanted).length} signed_call values present`);
process.exit(missing.length ? 1 : 0);
JS

if [ "${APEX_CHECK_PMD:-1}" = "0" ]; then
    echo "== apex-check: PMD skipped (APEX_CHECK_PMD=0)"
    exit 0
fi
echo "== apex-check: PMD Apex rules (Salesforce Code Analyzer, @salesforce/sfdx-scanner $scanner_version)"
if ! command -v java >/dev/null; then
    echo "pmd: java not found; PMD needs Java 11 or later" >&2
    exit 1
fi
if [ "$(installed_version "$tools/scanner" @salesforce/sfdx-scanner)" != "$scanner_version" ]; then
    npm_install "$tools/scanner" "@salesforce/sfdx-scanner@$scanner_version"
fi
# sfdx-scanner is an sf CLI plugin; oclif runs its command directly, so the sf CLI itself is not needed.
targets="$apex/force-app/main/default/classes,$apex/force-app/main/default/triggers,$apex/omni-channel/main/default"
report="$(mktemp -d)/pmd.csv"
trap 'rm -rf "$(dirname "$report")"' EXIT
set +e
(cd "$tools/scanner/node_modules/@salesforce/sfdx-scanner" && timeout 300 node -e '
require("@oclif/core").execute({ dir: process.cwd() + "/package.json", args: process.argv.slice(1) })
  .catch((e) => { console.error(e.message || e); process.exit(e.oclif && e.oclif.exit !== undefined ? e.oclif.exit : 1); });
' scanner run --engine pmd --target "$targets" --format csv --normalize-severity --outfile "$report" --severity-threshold 1 \
    2> >(grep -v 'we no longer support v4.x' >&2))
status=$?
set -e
python3 - "$report" "$repo" <<'PY'
import csv, sys, collections, os
path, repo = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(path))) if os.path.exists(path) and os.path.getsize(path) else []
levels = collections.Counter(r["Normalized Severity"] for r in rows)
for r in sorted(rows, key=lambda r: (r["Normalized Severity"], r["File"], int(r["Line"] or 0))):
    print(f'{os.path.relpath(r["File"], repo)}:{r["Line"]}: [severity {r["Normalized Severity"]}] {r["Rule"]}: {r["Description"]}')
print(f'pmd: {len(rows)} findings (high {levels.get("1", 0)}, moderate {levels.get("2", 0)}, low {levels.get("3", 0)})')
PY
if [ "$status" -ne 0 ]; then
    echo "pmd: the Code Analyzer exited $status: a high-severity finding (listed above) or a failure to run" >&2
    exit "$status"
fi
echo "apex-check: passed"
