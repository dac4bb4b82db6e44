"""deploy/check.py, the CI check of the deploy files, run as CI runs it: on the tree, and on copies with one drift each
(a base image by tag, a dependency the lock misses or pins below its floor)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "deploy" / "check.py")], capture_output=True, text=True, timeout=60
    )


def copy_tree(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "bridge").mkdir()
    shutil.copy(REPO / "bridge" / "config.py", tmp_path / "bridge" / "config.py")
    return tmp_path


def test_the_deploy_files_pass() -> None:
    result = run_check(REPO)
    assert result.returncode == 0, result.stdout


def edit(path: str, pattern: str, replacement: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        target = root / path
        changed = re.sub(pattern, replacement, target.read_text(), flags=re.MULTILINE)
        assert changed != target.read_text()
        target.write_text(changed)

    return apply


@pytest.mark.parametrize(
    ("drift", "problem"),
    [
        pytest.param(
            edit("deploy/Dockerfile", r"@sha256:[0-9a-f]{64}", ""), "is not pinned by digest", id="base-by-tag"
        ),
        pytest.param(
            edit("deploy/requirements.lock", r"^zenpy==.*\n(?:\s+--hash=.*\n)+", ""),
            "zenpy (pyproject.toml) is not pinned",
            id="dependency-not-locked",
        ),
        pytest.param(
            edit("deploy/requirements.lock", r"^starlette==\S+", "starlette==0.39.0"),
            "outside pyproject.toml's starlette>=",
            id="locked-below-floor",
        ),
        pytest.param(
            edit("deploy/requirements.lock", r"^(h11==\S+)[^#]*", r"\1\n    "), "h11 has no hash", id="no-hash"
        ),
        pytest.param(edit("deploy/Dockerfile", r"--no-deps ", ""), "installs without --no-deps", id="resolves-more"),
        pytest.param(
            edit("deploy/Dockerfile", r"--require-hashes ", ""), "with --require-hashes", id="hashes-not-required"
        ),
    ],
)
def test_drift_is_reported(tmp_path: Path, drift: Callable[[Path], None], problem: str) -> None:
    root = copy_tree(tmp_path)
    drift(root)
    result = run_check(root)
    assert result.returncode == 1 and problem in result.stdout, result.stdout
