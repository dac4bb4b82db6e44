"""Connectors are plugins: found through the entry-point group, checked when loaded, failing with their name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bridge.sandbox.server import free_port
from connectors.base import ConnectorLoadError, load_connector_classes


def test_builtin_connectors_are_entry_points() -> None:
    classes = load_connector_classes()
    assert {"salesforce", "zendesk"} <= set(classes)
    assert classes["salesforce"].name == "salesforce" and classes["zendesk"].name == "zendesk"


def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, target: str, code: str) -> None:
    (tmp_path / "acme_plugin.py").write_text(code)
    dist = tmp_path / "acme_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[helpdesk_bridge.connectors]\n{name} = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "acme_plugin", raising=False)


def test_a_plugin_that_does_not_import_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path, monkeypatch, "freshdesk", "acme_plugin:Missing", "raise ImportError('no sdk')\n")
    with pytest.raises(ConnectorLoadError, match="connector 'freshdesk'.*failed to load: no sdk"):
        load_connector_classes()


def test_a_plugin_missing_methods_names_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(
        tmp_path,
        monkeypatch,
        "freshdesk",
        "acme_plugin:Half",
        "class Half:\n    name = 'freshdesk'\n    def enabled(settings): return True\n",
    )
    with pytest.raises(ConnectorLoadError, match="connector 'freshdesk'.*lacks start, close, check"):
        load_connector_classes()


def test_serve_refuses_to_start_with_a_broken_plugin(tmp_path: Path) -> None:
    import os
    import subprocess

    install_dir = tmp_path / "site"
    install_dir.mkdir()
    (install_dir / "acme_plugin.py").write_text("raise ImportError('no sdk')\n")
    dist = install_dir / "acme_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[helpdesk_bridge.connectors]\nfreshdesk = acme_plugin:X\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IM_", "BRIDGE_", "ZENDESK_", "SALESFORCE_"))}
    env.update(
        IM_SDKAPPID="1400000001",
        IM_SECRET_KEY="k" * 20,
        PYTHONPATH=str(install_dir),
        BRIDGE_DATABASE_URL=f"sqlite:///{tmp_path}/b.db",
        BRIDGE_PORT=str(free_port()),
    )
    result = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "serve"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 2
    assert "connector 'freshdesk'" in result.stderr and "no sdk" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_plugin_without_settings_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    methods = "".join(
        f"    def {name}(self, *a): pass\n"
        for name in ("enabled", "start", "close", "check", "group_id", "ticket_id", "agent_id")
        + ("create_ticket", "get_ticket", "add_comment")
    )
    install_plugin(
        tmp_path,
        monkeypatch,
        "freshdesk",
        "acme_plugin:NoSettings",
        f"class NoSettings:\n    name = 'freshdesk'\n{methods}",
    )
    with pytest.raises(ConnectorLoadError, match="connector 'freshdesk'.*has no settings_class"):
        load_connector_classes()
