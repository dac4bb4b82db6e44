// Parses every .cls and .trigger file under the given folder with @apexdevtools/apex-parser
// (the ANTLR grammar of Apex, including inline SOQL/SOSL) and prints file:line:column for each syntax error.
// Usage: node apex-parse.mjs <parser module dir> <folder>; exit 1 on any error, 2 when nothing was parsed.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { createRequire } from "node:module";

const [parserHome, root] = process.argv.slice(2);
if (!parserHome || !root) {
  console.error("usage: node apex-parse.mjs <dir containing node_modules> <folder>");
  process.exit(2);
}
const require = createRequire(join(parserHome, "package.json"));
const { ApexParserFactory, ApexErrorListener } = require("@apexdevtools/apex-parser");

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (name.endsWith(".cls") || name.endsWith(".trigger")) out.push(path);
  }
  return out;
}

class Collect extends ApexErrorListener {
  constructor(file) {
    super();
    this.file = file;
    this.errors = [];
  }
  apexSyntaxError(line, column, msg) {
    // ANTLR lists every token it would have accepted; keep the message readable.
    const short = msg.length > 200 ? msg.slice(0, 200) + " ...}" : msg;
    this.errors.push(`${this.file}:${line}:${column + 1}: syntax error: ${short}`);
  }
}

const files = walk(root, []).sort();
let failed = 0;
for (const file of files) {
  const shown = relative(process.cwd(), file);
  const listener = new Collect(shown);
  const { parser } = ApexParserFactory.createLexerAndParser(readFileSync(file, "utf8"), listener);
  if (file.endsWith(".trigger")) parser.triggerUnit();
  else parser.compilationUnit();
  if (listener.errors.length) {
    failed++;
    for (const e of listener.errors) console.log(e);
  }
}
console.log(`apex-parse: ${files.length} files parsed, ${failed} with syntax errors`);
if (files.length === 0) process.exit(2);
process.exit(failed ? 1 : 0);
