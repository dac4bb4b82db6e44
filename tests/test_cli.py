"""The command line, run as a user would: a subprocess with an environment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge import auth
from bridge.jobs import JobQueue
from bridge.migrations import head_revision
from bridge.states import JobKind, JobStatus
from bridge.store import Database
from connectors.salesforce.ids import normalize
from tests.conftest import IM_KEY, SDKAPPID


def run(
    args: list[str], env: dict[str, str], cwd: Path, stdin: bytes = b"", stdout: int = subprocess.PIPE
) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IM_", "BRIDGE_", "ZENDESK_", "SALESFORCE_"))}
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        cwd=cwd,
        env={**base, **env},
        input=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=60,
    )


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    """The command failed with status 2 and one line on stderr, not a traceback."""
    error = result.stderr.decode()
    assert result.returncode == 2, error
    assert error.startswith("helpdesk-bridge: ") and error.count("\n") == 1, error
    return error


def test_sign_prints_verifiable_headers(tmp_path: Path) -> None:
    body = b'{"groupId":"G1","userId":"agent1"}'
    result = run(["sign", "--target", "/leavegroup"], {"BRIDGE_CALLOUT_SECRET": "s3cret-x"}, tmp_path, body)
    assert result.returncode == 0, result.stderr
    headers = dict(line.split(": ", 1) for line in result.stdout.decode().splitlines())
    auth.signed_call_scope(
        {"callout": "s3cret-x"},
        headers["X-Bridge-Timestamp"],
        headers["X-Bridge-Signature"],
        "POST",
        "/leavegroup",
        body,
    )
    (tmp_path / "body.json").write_bytes(body)
    from_file = run(
        ["sign", "--method", "get", "--target", "/links?provider=zendesk&ticketId=42", "body.json"],
        {"BRIDGE_CALLOUT_SECRET": "s3cret-x"},
        tmp_path,
    )
    headers = dict(line.split(": ", 1) for line in from_file.stdout.decode().splitlines())
    auth.signed_call_scope(
        {"callout": "s3cret-x"},
        headers["X-Bridge-Timestamp"],
        headers["X-Bridge-Signature"],
        "GET",
        "/links?provider=zendesk&ticketId=42",
        body,
    )


def test_sign_without_secret_names_it(tmp_path: Path) -> None:
    result = run(["sign"], {}, tmp_path, b"{}")
    assert result.returncode == 2 and b"BRIDGE_CALLOUT_SECRET" in result.stderr


def test_sign_with_the_app_secret(tmp_path: Path) -> None:
    body = b'{"userId":"cust1","caseInfo":{"subject":"From our backend"}}'
    env = {"BRIDGE_CALLOUT_SECRET": "s3cret-x", "BRIDGE_APP_SECRET": "app-s3cret"}
    result = run(["sign", "--app", "--target", "/createticket"], env, tmp_path, body)
    assert result.returncode == 0, result.stderr
    headers = dict(line.split(": ", 1) for line in result.stdout.decode().splitlines())
    scope, _ = auth.signed_call_scope(
        {"callout": "s3cret-x", "app": "app-s3cret"},
        headers["X-Bridge-Timestamp"],
        headers["X-Bridge-Signature"],
        "POST",
        "/createticket",
        body,
    )
    assert scope == "app"
    missing = run(["sign", "--app"], {"BRIDGE_CALLOUT_SECRET": "s3cret-x"}, tmp_path, b"{}")
    assert "BRIDGE_APP_SECRET" in one_line_error(missing)


def test_sign_a_missing_file_names_it(tmp_path: Path) -> None:
    result = run(["sign", "nonexist.json"], {"BRIDGE_CALLOUT_SECRET": "s3cret-x"}, tmp_path)
    assert "nonexist.json" in one_line_error(result) and not result.stdout


def test_usersig(tmp_path: Path) -> None:
    result = run(["usersig", "cust-9"], {"IM_SDKAPPID": str(SDKAPPID), "IM_SECRET_KEY": IM_KEY}, tmp_path)
    assert result.returncode == 0, result.stderr
    auth.verify_usersig(SDKAPPID, IM_KEY, "cust-9", result.stdout.decode().strip())


def test_usersig_follows_the_api_on_user_ids(tmp_path: Path) -> None:
    env = {"IM_SDKAPPID": str(SDKAPPID), "IM_SECRET_KEY": IM_KEY}
    refused = run(["usersig", "bad id!"], env, tmp_path)
    assert "userId" in one_line_error(refused) and not refused.stdout
    short = run(["usersig", "005000000000001"], env, tmp_path)  # a 15-character Salesforce user Id
    assert short.returncode == 0, short.stderr
    auth.verify_usersig(SDKAPPID, IM_KEY, normalize("005000000000001"), short.stdout.decode().strip())


def test_db_upgrade_and_jobs(tmp_path: Path) -> None:
    env = {"BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/b.db"}  # the IM settings are not needed here
    result = run(["db", "upgrade"], env, tmp_path)
    head = head_revision(env["BRIDGE_DATABASE_URL"])  # the newest migration, whichever it is
    assert result.returncode == 0 and f"database schema at {head}".encode() in result.stdout, result.stderr

    async def make_dead_job() -> int:
        db = Database(env["BRIDGE_DATABASE_URL"])
        queue = JobQueue(db)
        job, _ = await queue.enqueue(JobKind.JOIN, {"groupId": "G", "userId": "u"}, key="k1", ordering_key="G")
        (claimed,) = await queue.claim(1)
        await queue._finish(claimed, JobStatus.DEAD, error="IM add_group_member failed (ErrorCode 10004)")
        await db.close()
        assert job.id is not None
        return job.id

    job_id = asyncio.run(make_dead_job())
    listing = run(["jobs", "list"], env, tmp_path)
    assert listing.returncode == 0
    text = listing.stdout.decode()
    assert "join" in text and "dead" in text and "ErrorCode 10004" in text and "dead 1" in text
    assert run(["jobs", "retry", str(job_id)], env, tmp_path).stdout.startswith(b"1 job(s) queued again")
    assert b"pending" in run(["jobs", "list", "--status", "pending"], env, tmp_path).stdout
    assert run(["jobs", "retry", "999"], env, tmp_path).returncode == 1
    assert run(["jobs", "retry", "--all-dead"], env, tmp_path).returncode == 0


@pytest.mark.parametrize("args", [["jobs"], ["db"], ["nonsense"]])
def test_usage_errors(tmp_path: Path, args: list[str]) -> None:
    assert run(args, {}, tmp_path).returncode == 2


def test_serve_refuses_an_outdated_schema(tmp_path: Path) -> None:
    import sqlite3

    env = {"IM_SDKAPPID": str(SDKAPPID), "IM_SECRET_KEY": IM_KEY, "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/b.db"}
    assert run(["db", "upgrade"], env, tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "b.db") as conn:  # as left by an older bridge
        conn.execute("UPDATE alembic_version SET version_num = '0000'")
    result = run(["serve"], env, tmp_path)
    assert result.returncode == 2
    assert b"run `helpdesk-bridge db upgrade`" in result.stderr and b"Traceback" not in result.stderr


UNREACHABLE = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/test"  # nothing listens on port 1


@pytest.mark.parametrize("args", [["serve"], ["db", "upgrade"], ["jobs", "list"], ["jobs", "retry", "1"]])
def test_an_unreachable_database_is_one_line(tmp_path: Path, args: list[str]) -> None:
    for url in (UNREACHABLE, f"sqlite:///{tmp_path}/no-such-folder/b.db"):
        env = {"IM_SDKAPPID": str(SDKAPPID), "IM_SECRET_KEY": IM_KEY, "BRIDGE_DATABASE_URL": url}
        error = one_line_error(run(args, env, tmp_path))
        assert "BRIDGE_DATABASE_URL" in error and "cannot be reached" in error and "hunter2" not in error


@pytest.mark.parametrize("args", [["jobs", "list"], ["jobs", "retry", "--all-dead"]])
def test_jobs_without_the_schema_asks_for_an_upgrade(tmp_path: Path, args: list[str]) -> None:
    env = {"BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"}
    assert "run `helpdesk-bridge db upgrade`" in one_line_error(run(args, env, tmp_path))


def test_a_reader_that_goes_away_ends_quietly(tmp_path: Path) -> None:
    env = {"BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/b.db"}
    assert run(["db", "upgrade"], env, tmp_path).returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head -1` leaves it once head has its line
    try:
        result = run(["jobs", "list"], env, tmp_path, stdout=write_end)
    finally:
        os.close(write_end)
    assert result.returncode == 1 and result.stderr == b""
