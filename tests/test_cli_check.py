"""`helpdesk-bridge check` against the emulators: ok per upstream, or what is wrong."""

from __future__ import annotations

from pathlib import Path

from bridge.sandbox.server import BackgroundServer
from tests.conftest import IM_KEY, SDKAPPID, SF_PASSWORD, SF_TOKEN, SF_USER, ZD_EMAIL, ZD_TOKEN
from tests.test_cli import run


def env_for(im: BackgroundServer, sf: BackgroundServer, zd: BackgroundServer, **change: str) -> dict[str, str]:
    env = {
        "IM_SDKAPPID": str(SDKAPPID),
        "IM_SECRET_KEY": IM_KEY,
        "IM_API_BASE": im.url,
        "SALESFORCE_LOGIN_URL": sf.url,
        "SALESFORCE_USERNAME": SF_USER,
        "SALESFORCE_PASSWORD": SF_PASSWORD,
        "SALESFORCE_SECURITY_TOKEN": SF_TOKEN,
        "ZENDESK_URL": zd.url,
        "ZENDESK_EMAIL": ZD_EMAIL,
        "ZENDESK_API_TOKEN": ZD_TOKEN,
    }
    env.update(change)
    return env


def test_check_all_ok(im_server, sf_server, zd_server, tmp_path: Path) -> None:
    result = run(["check"], env_for(im_server, sf_server, zd_server), tmp_path)
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "im: ok" in out and "salesforce: ok" in out and "zendesk: ok" in out


def test_check_names_each_failure(im_server, sf_server, zd_server, tmp_path: Path) -> None:
    env = env_for(
        im_server,
        sf_server,
        zd_server,
        IM_SECRET_KEY="wrong-key-" + "x" * 20,
        ZENDESK_API_TOKEN="wrong-token",
        SALESFORCE_PASSWORD="wrong-password",
    )
    result = run(["check"], env, tmp_path)
    out = result.stdout.decode()
    assert result.returncode == 1
    assert "im: FAILED" in out and "salesforce: FAILED" in out and "zendesk: FAILED" in out
    for secret in ("wrong-key-", "wrong-token", "wrong-password"):
        assert secret not in out + result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
