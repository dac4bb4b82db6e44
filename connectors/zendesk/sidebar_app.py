"""The Zendesk ticket-sidebar app (connectors/zendesk/app/): the zip to upload as a private app.

Zendesk takes a zip with `manifest.json` at its root, `assets/` and `translations/` (what `zcli apps:package`
builds). The app shows the bridge's agent console; its one setting is the bridge's URL.
"""

from __future__ import annotations

import json
import zipfile
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

APP = files("connectors.zendesk") / "app"


def manifest() -> dict[str, Any]:
    return dict(json.loads((APP / "manifest.json").read_text(encoding="utf-8")))


def _entries(folder: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if item.name.startswith(".") or item.name == "__pycache__":
            continue
        if item.is_dir():
            found.extend(_entries(item, f"{prefix}{item.name}/"))
        else:
            found.append((prefix + item.name, item))
    return found


def build(out: Path) -> list[str]:
    """Write the app's zip to `out`; the archive's file names."""
    entries = _entries(APP)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, item in entries:
            archive.writestr(name, item.read_bytes())
    return [name for name, _ in entries]
