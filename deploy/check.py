"""Offline structural check of deploy/: the Dockerfile, its lock file, compose.yaml, .env.example and the Kubernetes
manifests.

No cluster, Docker engine or schema download needed; only PyYAML and packaging (both in the test environment).
Catches the drift a reviewer would miss: selectors that no longer match the pod labels, probes on the wrong paths,
a ConfigMap or Secret key that is not one of the bridge's settings (read from bridge/config.py and the connectors'
settings classes), a kustomization
naming a file that is gone, a base image not pinned by digest, a dependency of pyproject.toml that the lock file
misses or pins below its floor.
    python deploy/check.py        # exit 1 and one line per problem when something is wrong
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent
NAME = "helpdesk-bridge"
# Read by the container but not by the bridge's settings classes.
EXTRA_ENV = {"FORWARDED_ALLOW_IPS", "PORT", "POSTGRES_PASSWORD"}
problems: list[str] = []


def check(condition: object, message: str) -> None:
    if not condition:
        problems.append(message)


def _fields(node: ast.ClassDef, prefix: str = "") -> set[str]:
    return {
        (prefix + s.target.id).upper()
        for s in node.body
        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.target.id != "model_config"
    }


def _env_prefix(node: ast.ClassDef) -> str | None:
    """The env_prefix a connector's settings class sets in `model_config = SettingsConfigDict(env_prefix=...)`."""
    for s in node.body:
        if isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "model_config" for t in s.targets):
            for keyword in getattr(s.value, "keywords", []):
                if keyword.arg == "env_prefix" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
    return None


def setting_names() -> set[str]:
    """The environment variables of the bridge: the fields of class Settings in bridge/config.py, and those of each
    built-in connector's settings class (a ConnectorSettings under connectors/, with its env_prefix)."""
    tree = ast.parse((REPO / "bridge" / "config.py").read_text())
    core = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings"]
    if not core:
        raise SystemExit("class Settings not found in bridge/config.py")
    names = _fields(core[0])
    for path in sorted((REPO / "connectors").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "") == "ConnectorSettings" for b in node.bases):
                prefix = _env_prefix(node)
                check(prefix, f"{path.relative_to(REPO)}: {node.name} sets no env_prefix")
                names |= _fields(node, prefix or "")
    return names


def check_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [
        line.strip() for line in re.sub(r"\\\n", " ", text).splitlines() if line.strip() and not line.startswith("#")
    ]
    froms = [line for line in lines if line.upper().startswith("FROM ")]
    check(len(froms) >= 2, "Dockerfile: not multi-stage")
    check("python:3.11-slim" in text, "Dockerfile: base is not python:3.11-slim")
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    check(users and users[-1].split(":")[0] not in ("0", "root"), "Dockerfile: does not end as a non-root USER")
    check("EXPOSE 8000" in lines, "Dockerfile: no EXPOSE 8000")
    check(
        any(line.startswith("HEALTHCHECK") and "/healthz" in line for line in lines),
        "Dockerfile: no /healthz HEALTHCHECK",
    )
    check(lines[-1] == 'CMD ["helpdesk-bridge", "serve"]', "Dockerfile: last line is not CMD helpdesk-bridge serve")
    check("BRIDGE_HOST=0.0.0.0" in text, "Dockerfile: BRIDGE_HOST=0.0.0.0 not set")
    check((DEPLOY / "Dockerfile.dockerignore").is_file(), "Dockerfile.dockerignore missing")
    # Every base image by digest: a tag moves, so the same Dockerfile would build another image tomorrow.
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", "\n".join(lines), re.MULTILINE))
    stages = {line.split()[-1].lower() for line in froms if " AS " in line.upper()}
    images = {re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), line.split()[1]) for line in froms}
    for image in sorted(images - stages):
        check(re.search(r"@sha256:[0-9a-f]{64}$", image), f"Dockerfile: {image} is not pinned by digest")
    installs = [" ".join(line.split()) for line in lines if "pip install" in line]
    check(
        any("--require-hashes" in line and "requirements.lock" in line for line in installs),
        "Dockerfile: dependencies are not installed from requirements.lock with --require-hashes",
    )
    for line in installs:
        check(
            "--no-deps" in line or "--require-hashes" in line,
            f"Dockerfile: `{line[:60]}` installs without --no-deps, resolving dependencies past the lock",
        )
    dockerignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    check("!deploy/requirements.lock" in dockerignore, "Dockerfile.dockerignore: requirements.lock is not sent")


def lock_pins(text: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a pip-compile --generate-hashes file."""
    pins: dict[str, tuple[str, int]] = {}
    for entry in re.sub(r"\\\n", " ", text).splitlines():
        found = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)(.*)$", entry)
        if found:
            pins[canonicalize_name(found.group(1))] = (found.group(2), found.group(3).count("--hash=sha256:"))
        elif entry.strip() and not entry.lstrip().startswith("#"):
            problems.append(f"requirements.lock: not an exact pin: {entry.strip()[:80]}")
    return pins


def check_lock() -> None:
    lock = DEPLOY / "requirements.lock"
    if not lock.is_file():
        problems.append("requirements.lock missing: see deploy/README.md to make it")
        return
    pins = lock_pins(lock.read_text())
    for name, (_version, hashes) in sorted(pins.items()):
        check(hashes > 0, f"requirements.lock: {name} has no hash")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = pyproject["project"]["dependencies"] + pyproject["build-system"]["requires"]
    for line in wanted:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"requirements.lock: {requirement.name} (pyproject.toml) is not pinned; refresh the lock")
        elif not requirement.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"requirements.lock: {name}=={pins[name][0]} is outside pyproject.toml's {requirement}")


def check_env_keys(where: str, keys: set[str], settings: set[str]) -> None:
    for key in sorted(keys - settings - EXTRA_ENV):
        problems.append(f"{where}: {key} is not a setting of the bridge")


def check_compose(settings: set[str]) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose.get("services", {})
    for name in ("postgres", "migrate", "bridge"):
        check(name in services, f"compose.yaml: no service {name}")
    if not {"postgres", "migrate", "bridge"} <= set(services):
        return
    check(str(services["postgres"].get("image", "")).startswith("postgres:16"), "compose.yaml: postgres is not 16")
    check(
        services["migrate"].get("command") == [NAME, "db", "upgrade"], "compose.yaml: migrate does not run db upgrade"
    )
    bridge = services["bridge"]
    check(bridge.get("deploy", {}).get("replicas", 1) >= 2, "compose.yaml: bridge has fewer than 2 replicas")
    check(
        bridge.get("depends_on", {}).get("migrate", {}).get("condition") == "service_completed_successfully",
        "compose.yaml: bridge does not wait for migrate to complete",
    )
    check(
        "postgresql" in str(bridge.get("environment", {}).get("BRIDGE_DATABASE_URL")),
        "compose.yaml: bridge is not on PostgreSQL",
    )
    for name, service in services.items():
        check("healthcheck" in service or name == "migrate", f"compose.yaml: {name} has no healthcheck")
    example = DEPLOY / ".env.example"
    keys = {m.group(1) for m in re.finditer(r"^#? ?([A-Z][A-Z0-9_]+)=", example.read_text(), re.MULTILINE)}
    check_env_keys(".env.example", keys, settings)


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def check_kubernetes(settings: set[str]) -> None:
    folder = DEPLOY / "kubernetes"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs: dict[str, dict[str, Any]] = {}
    files = set(kustomization["resources"]) | {"secret.example.yaml"}
    for name in sorted(files):
        path = folder / name
        if not path.is_file():
            problems.append(f"kubernetes/kustomization.yaml: {name} does not exist")
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            where = f"kubernetes/{name}"
            for field in ("apiVersion", "kind", "metadata"):
                check(field in doc, f"{where}: no {field}")
            check("namespace" not in doc.get("metadata", {}), f"{where}: sets a namespace")
            docs[doc["kind"]] = doc
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Secret"):
        check(kind in docs, f"kubernetes: no {kind}")
    if "Deployment" not in docs:
        return
    deployment = docs["Deployment"]
    spec, pod = deployment["spec"], deployment["spec"]["template"]["spec"]
    labels = pod_labels(deployment)
    check(spec.get("replicas", 1) >= 2, "Deployment: fewer than 2 replicas")
    check(spec["selector"]["matchLabels"].items() <= labels.items(), "Deployment: selector does not match pod labels")
    check(docs["Service"]["spec"]["selector"].items() <= labels.items(), "Service: selector does not match pod labels")
    check(
        docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items(),
        "PodDisruptionBudget: selector does not match pod labels",
    )
    check(pod.get("securityContext", {}).get("runAsNonRoot") is True, "Deployment: runAsNonRoot is not set")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    all_containers = pod.get("initContainers", []) + pod["containers"]
    commands = [c.get("command") for c in all_containers]
    check([NAME, "db", "upgrade"] in commands, "Deployment: no initContainer running db upgrade")
    for container in all_containers:
        where = f"Deployment container {container['name']}"
        security = container.get("securityContext", {})
        check(security.get("readOnlyRootFilesystem") is True, f"{where}: root filesystem is not read-only")
        check(security.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation allowed")
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        check("emptyDir" in volumes.get(mounts.get("/tmp", ""), {}), f"{where}: /tmp is not an emptyDir")
        for mount in mounts.values():
            check(mount in volumes, f"{where}: mounts unknown volume {mount}")
        refs = {(k, v["name"]) for ref in container.get("envFrom", []) for k, v in ref.items()}
        check(
            refs == {("configMapRef", NAME), ("secretRef", NAME)}, f"{where}: envFrom is not ConfigMap + Secret {NAME}"
        )
        check("requests" in container.get("resources", {}), f"{where}: no resource requests")
    bridge = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in bridge.get("ports", [])}
    check(ports.get("http") == 8000, "Deployment: no port http=8000")
    for probe, probe_path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = bridge.get(probe, {}).get("httpGet", {})
        check(
            get.get("path") == probe_path and get.get("port") in (*ports, *ports.values()),
            f"Deployment: {probe} is not {probe_path}",
        )
    check(
        docs["Service"]["spec"]["ports"][0]["targetPort"] in (*ports, *ports.values()),
        "Service: targetPort is not a container port",
    )
    check(
        docs["ConfigMap"]["metadata"]["name"] == NAME and docs["Secret"]["metadata"]["name"] == NAME,
        f"kubernetes: ConfigMap and Secret are not both named {NAME}",
    )
    check_env_keys("kubernetes/configmap.yaml", set(docs["ConfigMap"].get("data") or {}), settings)
    check_env_keys("kubernetes/secret.example.yaml", set(docs["Secret"].get("stringData") or {}), settings)
    for key, value in (docs["ConfigMap"].get("data") or {}).items():
        check(isinstance(value, str) and value != "", f"kubernetes/configmap.yaml: {key} is not a non-empty string")


def main() -> int:
    settings = setting_names()
    check_dockerfile()
    check_lock()
    check_compose(settings)
    check_kubernetes(settings)
    for problem in problems:
        print(problem)
    print(f"deploy check: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
