"""The Zendesk ticket-sidebar app shipped in connectors/zendesk/app: its manifest checked offline against Zendesk's
documented schema (zcli apps:validate needs a live account), its files, and the zip `helpdesk-bridge zendesk app`
builds."""

from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

from bridge.cli import main
from connectors.zendesk import sidebar_app

APP = Path(sidebar_app.__file__).parent / "app"
# Zendesk's "Manifest reference" (apps framework v2) and zcli's Manifest type: required keys and their types.
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "author": dict,
    "defaultLocale": str,
    "location": dict,
    "frameworkVersion": str,
}
OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "private": bool,
    "version": str,
    "singleInstall": bool,
    "signedUrls": bool,
    "parameters": list,
    "domainWhitelist": list,
    "oauth": dict,
    "requirementsOnly": bool,
    "experiments": dict,
    "marketingOnly": bool,
}
PARAMETER_TYPES = {"text", "password", "checkbox", "url", "number", "multiline", "hidden", "oauth"}
SUPPORT_LOCATIONS = {
    "ticket_sidebar",
    "new_ticket_sidebar",
    "user_sidebar",
    "organization_sidebar",
    "top_bar",
    "nav_bar",
    "ticket_editor",
    "background",
    "modal",
}
LOCATION_KEYS = {"url": str, "flexible": bool, "autoLoad": bool, "autoHide": bool, "size": dict}


def schema_problems(manifest: Any) -> list[str]:
    problems = []
    if not isinstance(manifest, dict):
        return ["the manifest is not a JSON object"]
    for key, kind in REQUIRED.items():
        if not isinstance(manifest.get(key), kind):
            problems.append(f"{key} is required ({kind})")
    for key, value in manifest.items():
        if key not in REQUIRED and key not in OPTIONAL:
            problems.append(f"unknown key {key}")
        elif key in OPTIONAL and not isinstance(value, OPTIONAL[key]):
            problems.append(f"{key} must be {OPTIONAL[key]}")
    author = manifest.get("author") or {}
    for key in ("name", "email"):
        if not isinstance(author.get(key), str) or not author[key]:
            problems.append(f"author.{key} is required")
    if manifest.get("frameworkVersion") != "2.0":
        problems.append("frameworkVersion must be 2.0")
    for product, locations in (manifest.get("location") or {}).items():
        if product != "support":
            problems.append(f"location product {product} is not Support")
        for name, location in locations.items():
            if name not in SUPPORT_LOCATIONS:
                problems.append(f"unknown Support location {name}")
            if isinstance(location, dict):
                for key, value in location.items():
                    if key not in LOCATION_KEYS or not isinstance(value, LOCATION_KEYS[key]):
                        problems.append(f"location {name}.{key} is not a documented key of that type")
                if "url" not in location:
                    problems.append(f"location {name} has no url")
            elif not isinstance(location, str):
                problems.append(f"location {name} must be a URL or an object")
    names = set()
    for parameter in manifest.get("parameters") or []:
        if not isinstance(parameter.get("name"), str) or parameter.get("type") not in PARAMETER_TYPES:
            problems.append(f"parameter {parameter} needs a name and a documented type")
        names.add(parameter.get("name"))
        for flag in ("required", "secure"):
            if flag in parameter and not isinstance(parameter[flag], bool):
                problems.append(f"parameter {parameter.get('name')}.{flag} must be a boolean")
    for url in [loc.get("url", "") for locs in manifest.get("location", {}).values() for loc in locs.values()]:
        for setting in re.findall(r"\{\{\s*setting\.(\w+)\s*\}\}", url):
            if setting not in names:
                problems.append(f"the location URL uses an undeclared setting {setting}")
    return problems


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])  # type: ignore[return-value]


def test_the_manifest_follows_zendesks_schema() -> None:
    manifest = json.loads((APP / "manifest.json").read_text())
    assert schema_problems(manifest) == []
    assert manifest["signedUrls"] is True
    sidebar = manifest["location"]["support"]["ticket_sidebar"]
    assert sidebar["url"] == "{{setting.bridge_url}}/console/zendesk"  # the bridge route that verifies the token
    bridge_url = next(p for p in manifest["parameters"] if p["name"] == "bridge_url")
    assert bridge_url == {"name": "bridge_url", "type": "url", "required": True, "secure": False}


def test_the_schema_check_catches_mistakes() -> None:
    good = json.loads((APP / "manifest.json").read_text())
    assert schema_problems({**good, "signedUrls": "yes"}) == ["signedUrls must be <class 'bool'>"]
    assert "frameworkVersion is required (<class 'str'>)" in schema_problems(
        {k: v for k, v in good.items() if k != "frameworkVersion"}
    )
    bad_location = {**good, "location": {"support": {"ticket_sidebar": {"url": "{{setting.nope}}/x", "flexible": 1}}}}
    assert len(schema_problems(bad_location)) == 2


def test_the_app_has_its_translations_assets_and_logos() -> None:
    english = json.loads((APP / "translations" / "en.json").read_text())
    assert english["app"]["name"] and english["app"]["short_description"]
    assert english["app"]["parameters"]["bridge_url"]["label"]
    assert "{{bootstrap}}" in (APP / "assets" / "iframe.html").read_text()
    assert png_size(APP / "assets" / "logo.png") == (320, 320)
    assert png_size(APP / "assets" / "logo-small.png") == (128, 128)


def test_the_cli_builds_the_zip_to_upload(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "app.zip"
    assert main(["zendesk", "app", "--out", str(out)]) == 0
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        assert names == {
            "manifest.json",
            "translations/en.json",
            "assets/iframe.html",
            "assets/logo.png",
            "assets/logo-small.png",
        }
        assert json.loads(archive.read("manifest.json")) == json.loads((APP / "manifest.json").read_text())
    assert "ZENDESK_APP_PUBLIC_KEY" in capsys.readouterr().out
    assert main(["zendesk", "app", "--out", str(tmp_path / "missing" / "app.zip")]) == 1
