"""`helpdesk-bridge sandbox` as a person uses it: start it, paste the printed commands into bash, see the flow."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    # The shell prelude: the export lines and the `signed` and `pp` helpers, exactly as printed.
    prelude = "\n".join(
        line for line in text.splitlines() if line.startswith(("export ", "signed()", "  -H @<(", "pp()"))
    )
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
        ["bash", "-c", prelude + "\n" + script], capture_output=True, text=True, timeout=90, env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def commands(block: str, indent: int = 5) -> str:
    """The commands of a part of the walkthrough: prose is indented by three spaces, commands by five (seven under
    the lettered items, where a page to open in a browser is a bare URL)."""
    lines = [line[indent:] for line in block.splitlines() if line.startswith(" " * indent)]
    return "\n".join(line for line in lines if not line.startswith("http"))


def step(text: str, number: int) -> str:
    """The commands of walkthrough step `number`."""
    return commands(text.split(f"\n{number}. ", 1)[1].split(f"\n{number + 1}. ", 1)[0].split("\nPress Ctrl-C")[0])


def steps(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^(\d+)\. ", text, re.MULTILINE)]


def poll(check: Callable[[], Any], what: str, seconds: float = 15) -> Any:
    deadline = time.time() + seconds
    while not (result := check()):
        assert time.time() < deadline, what
        time.sleep(0.2)
    return result


def url_of(prelude: str, name: str) -> str:
    return re.search(rf"\b{name}=(\S+)", prelude).group(1)  # type: ignore[union-attr]


def test_the_prelude_pastes_into_an_interactive_bash(sandbox: tuple[str, str]) -> None:
    """What a person pastes goes through an interactive bash, which expands "!" and reads line by line."""
    prelude, _ = sandbox
    show = 'echo "$SF_TOKEN|$ZD_AUTH|$USERSIG|$BRIDGE_CALLOUT_SECRET"'
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    pasted = subprocess.run(
        ["bash", "--norc", "--noprofile", "-i"],
        input=prelude + "\n" + show + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert "event not found" not in pasted.stderr and "syntax error" not in pasted.stderr, pasted.stderr
    expected = bash(prelude, show).strip()
    assert expected.count("|") == 3 and "!" in expected.split("|")[0]  # a Salesforce session id has one
    assert expected in pasted.stdout


def test_the_walkthrough_runs_as_printed(sandbox: tuple[str, str]) -> None:
    """Every numbered step, then the lettered ones, pasted into one bash as printed: no edits, no placeholders."""
    prelude, text = sandbox
    numbered = steps(text.split("\n1. ", 1)[1])
    assert numbered[:5] == [2, 3, 4, 5, 6]
    script = "\n".join(step(text, n) for n in [1, *numbered])
    lettered = commands(text.split("Watch a conversation", 1)[1].split("\n1. ", 1)[0], indent=7)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    result = subprocess.run(
        ["bash", "-c", prelude + "\n" + script + "\n" + lettered],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    for broken in ("syntax error", "command not found", "No such file", "Traceback"):
        assert broken not in result.stderr, result.stderr
    out = result.stdout
    ticket = re.search(r"^TICKET=(\d+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    case = re.search(r"^CASE=(500\w{15})$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert '"ok": true' in out  # /joingroup, pretty-printed
    assert "totals:" in out  # the job list

    bridge_url, zd_url, im_url = (url_of(prelude, n) for n in ("BRIDGE", "ZD", "IM"))
    zd_auth = re.search(r"ZD_AUTH='?([^'\s]+)", prelude).group(1)  # type: ignore[union-attr]
    email, token = zd_auth.split("/token:")
    # The Zendesk ticket: its agent joined under the agent's Zendesk name, the customer's message is a comment.
    state = poll(
        lambda: (
            (s := httpx.get(im_url + "/_emulator/state").json())
            and any(m.startswith("zd_") for m in s["groups"][f"ZENDESK#{ticket}"]["Members"])
            and s
        ),
        "the Zendesk agent never joined",
    )
    agent = next(m for m in state["groups"][f"ZENDESK#{ticket}"]["Members"] if m.startswith("zd_"))
    assert state["accounts"][agent]["Nick"] == "Alice Agent"
    assert state["accounts"]["customer1"]["Nick"] == "Jane Doe"

    def comments() -> list[str]:
        answer = httpx.get(f"{zd_url}/api/v2/tickets/{ticket}/comments.json", auth=(f"{email}/token", token))
        return [c["body"] for c in answer.json()["comments"]]

    poll(lambda: "It is still smoking" in comments(), "the customer's message never reached the ticket")
    # The agent's public answer reached the customer's chat as the agent, under the agent's name; the note did not.
    chat = poll(
        lambda: [
            m
            for m in httpx.get(im_url + "/_emulator/state").json()["messages"][f"ZENDESK#{ticket}"]
            if m["From_Account"] == agent
        ],
        "the agent's reply never reached the chat",
    )
    texts = [e["MsgContent"]["Text"] for m in chat for e in m["MsgBody"]]
    assert any("Unplug it" in t for t in texts) and not any("warranty" in t for t in texts), texts
    assert '"zd_' in out and '": "Alice Agent"' in out  # the chat as the customer's app reads it, with its Nicks
    # The Salesforce Case: its owner joined.
    poll(
        lambda: any(
            m.startswith("sf_005") for m in httpx.get(im_url + "/_emulator/state").json()["groups"][case]["Members"]
        ),
        "the owner_changed event was never applied",
    )
    assert bridge_url.startswith("http://127.0.0.1:")
    # Seconds after the internal note was written, it is still not in the chat.
    everything = httpx.get(im_url + "/_emulator/state").json()["messages"][f"ZENDESK#{ticket}"]
    assert not any("warranty" in e["MsgContent"].get("Text", "") for m in everything for e in m["MsgBody"])


def test_state_dumps_are_readable(sandbox: tuple[str, str]) -> None:
    """The emulators' state is pretty-printed with one line per message, and still JSON."""
    prelude, text = sandbox
    bash(prelude, step(text, 1) + "\n" + step(text, 3))  # a ticket, and the customer's message in its group
    for name in ("IM", "ZD", "SF"):
        dump = httpx.get(url_of(prelude, name) + "/_emulator/state").text
        assert isinstance(json.loads(dump), dict) and dump.count("\n") > 10, name
    dump = httpx.get(url_of(prelude, "IM") + "/_emulator/state").text
    lines = [line for line in dump.splitlines() if "It is still smoking" in line and '"MsgSeq"' in line]
    assert lines, dump[:3000]
    for line in lines:  # each message whole on its line
        message = json.loads(line.strip().rstrip(","))
        assert message["From_Account"] == "customer1" and message["MsgBody"][0]["MsgType"] == "TIMTextElem"


def test_a_busy_port_says_which_port_to_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "bridge.cli", "sandbox", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    suggested = re.search(r"--port (\d+)", result.stderr)
    assert suggested and int(suggested.group(1)) != port, result.stderr
    assert f"port {port}" in result.stderr and "in use" in result.stderr
    assert "Errno" not in result.stderr + result.stdout
