"""JSON for people: objects one key a line, lists one item a line (a message, a comment, a request each on its own
line). The emulators' `/_emulator/state` dumps are written this way, and the sandbox walkthrough pipes answers
through it: `python -m bridge.sandbox.pretty [PATH]` reads JSON on stdin and prints it, or with PATH (keys and list
indexes joined by dots, e.g. `ticket.id` or `comments.-1.body`) the value there: a string or number bare, so that
`TICKET=$(curl ... | python -m bridge.sandbox.pretty ticketId)` captures it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from starlette.responses import Response

# Line breaks that JSON leaves raw in strings (it escapes the control characters below U+0020): escaped here too, so
# that an item stays on its one line.
_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _one_line(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    for char, escaped in _BREAKS.items():
        text = text.replace(char, escaped)
    return text


def readable(value: Any, indent: int = 0) -> str:
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, dict) and value:
        lines = [f"{inner}{_one_line(str(k))}: {readable(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(lines) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        lines = [inner + _one_line(v) for v in value]
        return "[\n" + ",\n".join(lines) + f"\n{pad}]"
    return _one_line(value)


class ReadableJSON(Response):
    """A JSON response written with `readable`: still JSON to every client, and legible in a terminal."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return (readable(content) + "\n").encode()


def pick(value: Any, path: str) -> Any:
    for part in path.split(".") if path else []:
        if isinstance(value, list):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value[part]
        else:
            raise KeyError(part)
    return value


def main(argv: list[str]) -> int:
    raw = sys.stdin.read()
    try:
        document = json.loads(raw)
    except ValueError:
        sys.stderr.write(raw or "(no answer)\n")  # not JSON (an error page, nothing at all): shown as it came
        return 1
    try:
        value = pick(document, argv[0] if argv else "")
    except (KeyError, IndexError, ValueError):
        sys.stderr.write(f"no {argv[0]!r} in: {raw.strip()[:500]}\n")
        return 1
    print(value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else readable(value))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
