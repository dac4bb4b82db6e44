"""Open operational endpoints, error shapes for unknown routes and methods, CORS, and configuration at start."""

from __future__ import annotations

import os
import random
import re
import socket
import string
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from starlette.routing import Route

from bridge.config import ConfigError, load_settings
from bridge.openapi import openapi_path
from tests.conftest import PG_URL, BridgeClient, BridgeFactory, make_group, reset_postgres
from tests.tcpproxy import TcpProxy


def test_health_ready_metrics(bridge: BridgeClient, im_server) -> None:
    assert bridge.http.get("/healthz").json() == {"status": "ok"}
    assert bridge.http.get("/readyz").status_code == 200
    make_group(im_server, "G-m", "cust1")
    bridge.post("/joingroup", {"groupId": "G-m", "userId": "agent1"})
    text = bridge.http.get("/metrics").text
    assert 'bridge_http_requests_total{method="POST",route="/joingroup",status="200"} 1.0' in text
    assert 'bridge_jobs{status="done"} 1.0' in text
    assert "bridge_jobs_oldest_pending_seconds" in text


def db_transactions(bridge: BridgeClient) -> float:
    text = bridge.http.get("/metrics").text
    values = [line.split()[1] for line in text.splitlines() if line.startswith("bridge_db_transactions_total ")]
    assert len(values) == 1, "bridge_db_transactions_total is not on /metrics"
    return float(values[0])


def test_metrics_count_committed_database_transactions(bridge: BridgeClient, im_server) -> None:
    make_group(im_server, "G-tx", "cust1")
    before = db_transactions(bridge)
    for agent in ("agent1", "agent2", "agent3"):
        assert bridge.post("/joingroup", {"groupId": "G-tx", "userId": agent}).status_code == 200
    # Each join is stored as a job before it is answered: at least one committed transaction apiece.
    assert db_transactions(bridge) >= before + 3


@pytest.mark.skipif(not PG_URL, reason="needs BRIDGE_TEST_DATABASE_URL")
def test_readyz_503_when_database_is_gone(bridge_factory: BridgeFactory) -> None:
    assert PG_URL
    url = make_url(PG_URL)
    reset_postgres(PG_URL)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        client = bridge_factory(database_url=str(url.set(host="127.0.0.1", port=proxy.port)))
        assert client.http.get("/readyz").status_code == 200
        proxy.cut()
        r = client.http.get("/readyz")
        assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
        r = client.post("/joingroup", {"groupId": "G", "userId": "agent1"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
        assert r.headers["retry-after"] == "5"
        proxy.restore()
        assert client.http.get("/readyz").status_code == 200
    finally:
        proxy.close()


def test_openapi_lists_every_route(bridge: BridgeClient) -> None:
    """The document and the routes the app serves are the same list, both ways (the static files aside)."""
    doc = bridge.http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    served = {
        (openapi_path(route.path), method.lower())
        for route in bridge.server.app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"  # Starlette adds HEAD to every GET
    }
    documented = {(path, method) for path, operations in doc["paths"].items() for method in operations}
    assert served == documented
    assert {"/createticket", "/joingroup", "/usersig", "/salesforce/events", "/links/{groupId}"} <= set(doc["paths"])
    schema = doc["components"]["schemas"]["MemberBody"]
    assert set(schema["required"]) == {"groupId", "userId"}
    assert doc["paths"]["/createticket"]["post"]["security"] == [{"signedCall": []}, {"userSig": []}]
    assert doc["paths"]["/healthz"]["get"]["security"] == []


def test_unknown_route_and_method_are_json(bridge: BridgeClient) -> None:
    r = bridge.http.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = bridge.http.get("/joingroup")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_cors(bridge_factory: BridgeFactory) -> None:
    client = bridge_factory(bridge_allowed_origins="https://app.example.com,https://other.example.com")
    preflight = client.http.options(
        "/createticket",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    denied = client.http.options(
        "/createticket", headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in denied.headers
    assert denied.status_code == 400 and denied.json()["error"]["code"] == "cors_refused"
    assert "origin" in denied.json()["error"]["message"]


def test_no_secret_in_error_bodies(bridge: BridgeClient) -> None:
    for r in [
        bridge.post("/joingroup", {"groupId": "G", "userId": "a"}, secret="wrong"),
        bridge.post("/joingroup", b"{bad"),
        bridge.post("/usersig", {"userId": "a b"}),
    ]:
        assert "callout-secret-for-tests" not in r.text and "im-test-key" not in r.text


@pytest.mark.parametrize(
    "env,names",
    [
        ({}, ["IM_SDKAPPID", "IM_SECRET_KEY"]),
        ({"IM_SDKAPPID": "12x", "IM_SECRET_KEY": "k"}, ["IM_SDKAPPID"]),
        ({"IM_SDKAPPID": "1", "IM_SECRET_KEY": "k", "IM_API_BASE": "ftp://host"}, ["IM_API_BASE"]),
        ({"IM_SDKAPPID": "1", "IM_SECRET_KEY": "k", "ZENDESK_URL": "https://a.zendesk.com"}, ["ZENDESK_EMAIL"]),
        ({"IM_SDKAPPID": "1", "IM_SECRET_KEY": "k", "SALESFORCE_USERNAME": "u"}, ["SALESFORCE_PASSWORD"]),
        ({"IM_SDKAPPID": "1", "IM_SECRET_KEY": "k", "BRIDGE_PORT": "99999"}, ["BRIDGE_PORT"]),
        ({"IM_SDKAPPID": "1", "IM_SECRET_KEY": "changeme"}, ["IM_SECRET_KEY"]),
        (
            {"IM_SDKAPPID": "1", "IM_SECRET_KEY": "k", "BRIDGE_DEFAULT_CONNECTOR": "zendesk"},
            ["BRIDGE_DEFAULT_CONNECTOR"],
        ),
        ({"IM_SDKAPPID": "1", "IM_SECRET_KEY": "k", "BRIDGE_DATABASE_URL": "mysql://x"}, ["BRIDGE_DATABASE_URL"]),
    ],
)
def test_bad_configuration_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], names: list[str]
) -> None:
    for key in list(os.environ):
        if key.startswith(("IM_", "SALESFORCE_", "ZENDESK_", "BRIDGE_")) or key == "PORT":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    for name in names:
        assert name in str(info.value)


def test_dotenv_and_port_alias(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith(("IM_", "SALESFORCE_", "ZENDESK_", "BRIDGE_")) or key == "PORT":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "IM_SDKAPPID=1400000009\nIM_SECRET_KEY=from-dotenv\nPORT=9123\n"
        "BRIDGE_ALLOWED_ORIGINS=https://a.example, https://b.example\n"
    )
    settings = load_settings()
    assert settings.im_sdkappid == 1400000009 and settings.bridge_port == 9123
    assert settings.bridge_allowed_origins == ["https://a.example", "https://b.example"]
    assert settings.im_api_base == "https://console.tim.qq.com" and settings.im_admin_userid == "administrator"
    assert "from-dotenv" not in repr(settings)


def test_serve_refuses_bad_config_with_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IM_", "BRIDGE_", "ZENDESK_", "SALESFORCE_"))}
    result = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "IM_SDKAPPID" in result.stderr and "Traceback" not in result.stderr


def raw_request(url: str, method: str, path: str = "/healthz") -> bytes:
    """One request with any method, as a client's socket sends it (httpx would refuse some of these)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def method_labels(metrics_text: str) -> set[str]:
    return set(re.findall(r'^bridge_http_requests_total\{[^}]*method="([^"]*)"', metrics_text, re.MULTILINE))


def test_unknown_methods_add_no_metric_series(bridge: BridgeClient) -> None:
    rng = random.Random(16)
    webdav = ["PROPFIND", "MKCOL", "LOCK", "UNLOCK", "COPY", "MOVE", "PURGE", "REPORT", "SEARCH", "SUBSCRIBE"]
    made_up = ["".join(rng.choices(string.ascii_uppercase, k=8)) for _ in range(20)]
    for method in webdav + made_up + ["GET", "POST"]:
        raw_request(bridge.server.url, method)
    labels = method_labels(bridge.http.get("/metrics").text)
    assert labels <= {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"}, labels
    assert {"GET", "POST", "other"} <= labels
