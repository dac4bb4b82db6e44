"""The sandbox's JSON for people (bridge/sandbox/pretty.py): still the same JSON, with one line per list item."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.sandbox.pretty import readable

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20
)


@given(documents)
def test_readable_is_the_same_json(value: Any) -> None:
    assert json.loads(readable(value)) == value


@given(st.lists(st.dictionaries(st.text(), scalars | st.lists(scalars), min_size=1, max_size=4), min_size=1))
def test_a_list_of_objects_is_one_line_per_object(messages: list[dict[str, Any]]) -> None:
    text = readable({"messages": messages})
    lines = text.splitlines()[2:-2]  # inside `{`, `"messages": [` ... `]`, `}`
    assert [json.loads(line.strip().removesuffix(",")) for line in lines] == messages


def run(document: str, *path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.sandbox.pretty", *path], input=document, capture_output=True, text=True
    )


def test_the_command_prints_a_value_bare_for_bash_to_capture() -> None:
    document = json.dumps({"ticket": {"id": 42, "tags": ["a"]}, "comments": [{"body": "first"}, {"body": "last"}]})
    assert run(document, "ticket.id").stdout == "42\n"
    assert run(document, "comments.-1.body").stdout == "last\n"
    assert json.loads(run(document, "ticket").stdout) == {"id": 42, "tags": ["a"]}
    missing = run(document, "ticket.subject")
    assert missing.returncode == 1 and "no 'ticket.subject'" in missing.stderr and not missing.stdout
    broken = run("<html>502 Bad Gateway</html>", "ticket.id")
    assert broken.returncode == 1 and "502 Bad Gateway" in broken.stderr and not broken.stdout
