"""`helpdesk-bridge sandbox` as a person uses it: start it, paste the printed commands into bash, see the flow."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge.sandbox.server import free_port

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("bash") is None, reason="the walkthrough is curl in bash"
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[str, str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IM_", "BRIDGE_", "ZENDESK_", "SALESFORCE_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "sandbox", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.time() + 60
    while not any(line.startswith("Press Ctrl-C") for line in lines):
        assert time.time() < deadline and process.poll() is None, "".join(lines)
        lines.append(process.stdout.readline())
    text = "".join(lines)
    # The shell prelude: the export lines and the `signed` helper, exactly as printed.
    prelude = "\n".join(line for line in text.splitlines() if line.startswith(("export ", "signed()", "  -H @<(")))
    yield prelude, text
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()


def bash(prelude: str, script: str) -> str:
    # No helpdesk-bridge on PATH, as after `.venv/bin/pip install .` without activating the venv.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    result = subprocess.run(
        ["bash", "-c", prelude + "\n" + script], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def step(text: str, number: int) -> str:
    """The commands of walkthrough step `number`, joined into a script."""
    block = text.split(f"\n{number}. ", 1)[1].split(f"\n{number + 1}. ", 1)[0]
    # Prose is indented by three spaces, commands by five (continuations by seven).
    commands = [line[5:] for line in block.splitlines() if line.startswith("     ")]
    return "\n".join(commands).replace("\\\n", "")


def test_walkthrough_zendesk_ticket(sandbox: tuple[str, str]) -> None:
    prelude, text = sandbox
    out = bash(prelude, step(text, 1).split("curl -s $IM/_emulator/state")[0])
    answer = json.loads(out.strip().splitlines()[0])
    assert answer["provider"] == "zendesk" and answer["groupId"] == f"ZENDESK#{answer['ticketId']}"
    im_url = re.search(r"export BRIDGE=\S+ IM=(\S+)", prelude).group(1)  # type: ignore[union-attr]
    state = httpx.get(im_url + "/_emulator/state").json()
    assert "customer1" in state["groups"][answer["groupId"]]["Members"]


def test_walkthrough_salesforce_and_signed_calls(sandbox: tuple[str, str]) -> None:
    prelude, text = sandbox
    created = bash(
        prelude, """signed /salesforce/createticket '{"userId":"customer2","caseInfo":{"subject":"Refund"}}'"""
    )
    case_id = json.loads(created)["ticketId"]
    script = step(text, 4).replace("CASE=<ticketId from the answer>", f"CASE={case_id}")
    script = "\n".join(line for line in script.splitlines() if "/salesforce/createticket" not in line)
    out = bash(prelude, script)
    assert json.loads(out.strip().splitlines()[-1])["groupId"] == case_id, out
    deadline = time.time() + 10  # the event is applied by the job worker, right after the 202
    while not json.loads(bash(prelude, f'signed "/links/{case_id}" "" GET'))["agents"]:
        assert time.time() < deadline, "the owner_changed event was never applied"
        time.sleep(0.2)
    link = json.loads(bash(prelude, f'signed "/links/{case_id}" "" GET'))
    assert len(link["agents"]) == 1 and link["agents"][0].startswith("sf_005")  # the agent's IM account
    joined = bash(prelude, f"""signed /joingroup '{{"groupId":"{case_id}","userId":"agent2"}}'""")
    assert json.loads(joined)["ok"] is True


def test_walkthrough_assignment_and_transcript(sandbox: tuple[str, str]) -> None:
    prelude, text = sandbox
    created = bash(prelude, step(text, 1).split("curl -s $IM/_emulator/state")[0])
    ticket = json.loads(created.strip().splitlines()[0])["ticketId"]
    assign = step(text, 2).replace("TICKET=1", f"TICKET={ticket}")
    deadline = time.time() + 10
    bash(prelude, assign)
    while not json.loads(bash(prelude, f'signed "/links?provider=zendesk&ticketId={ticket}" "" GET'))["agents"]:
        assert time.time() < deadline, "the Zendesk webhook never moved the agent into the group"
        time.sleep(0.2)
    agents = json.loads(bash(prelude, f'signed "/links?provider=zendesk&ticketId={ticket}" "" GET'))["agents"]
    assert [a.startswith("zd_") for a in agents] == [True]
    chat = step(text, 3).replace("$TICKET", ticket)
    deadline = time.time() + 10
    bash(prelude, chat.splitlines()[0])
    while True:
        comments = json.loads(bash(prelude, chat.splitlines()[-1]).strip())["comments"]
        if any("It is still smoking" in c["body"] for c in comments):
            break
        assert time.time() < deadline, "the customer's message never reached the ticket"
        time.sleep(0.2)
