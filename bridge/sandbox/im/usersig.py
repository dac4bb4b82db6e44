"""UserSig verification for the IM emulator: an independent reading of Tencent's TLS v2 signature format.

A UserSig is JSON (`TLS.ver`, `TLS.identifier`, `TLS.sdkappid`, `TLS.time`, `TLS.expire`, `TLS.sig`, optional
`TLS.userbuf`), zlib-compressed, then base64 with `+ / =` replaced by `* - _`. `TLS.sig` is base64 HMAC-SHA256 with the
app's key over "TLS.identifier:<id>\\nTLS.sdkappid:<n>\\nTLS.time:<t>\\nTLS.expire:<e>\\n" (plus "TLS.userbuf:<b>\\n"
when a userbuf is present). `TLS.expire` is a duration in seconds counted from `TLS.time`. There is no public verify
function, so we verify by recomputing. Deliberately separate from bridge.auth: the emulator must not share the
bridge's bugs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import zlib
from typing import Any

# Tencent's account error codes (REST API common error codes, "账号错误码").
USERSIG_EXPIRED = 70001
USERSIG_MALFORMED = 70003
USERSIG_BAD_SIGNATURE = 70009
USERSIG_IDENTIFIER_MISMATCH = 70013
USERSIG_SDKAPPID_MISMATCH = 70014


def decode_usersig(usersig: str) -> dict[str, Any] | None:
    """The JSON inside a UserSig, or None when it is not one."""
    try:
        raw = base64.b64decode(usersig.replace("*", "+").replace("-", "/").replace("_", "="), validate=True)
        data = json.loads(zlib.decompress(raw).decode("utf-8"))
    except (binascii.Error, ValueError, zlib.error, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    needed = ("TLS.identifier", "TLS.sdkappid", "TLS.time", "TLS.expire", "TLS.sig")
    if any(key not in data for key in needed):
        return None
    # Tencent's SDKs write these as 64-bit integers; json.loads also accepts floats, Infinity and NaN, which
    # int() turns into nonsense or OverflowError. A malformed UserSig is 70003, never a server error.
    for name in ("TLS.time", "TLS.expire", "TLS.sdkappid"):
        value = data[name]
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
            return None
    return data


def expected_sig(data: dict[str, Any], key: str) -> str:
    content = (
        f"TLS.identifier:{data['TLS.identifier']}\n"
        f"TLS.sdkappid:{data['TLS.sdkappid']}\n"
        f"TLS.time:{data['TLS.time']}\n"
        f"TLS.expire:{data['TLS.expire']}\n"
    )
    if data.get("TLS.userbuf") is not None:
        content += f"TLS.userbuf:{data['TLS.userbuf']}\n"
    digest = hmac.new(key.encode("utf-8"), content.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_usersig(usersig: str, *, identifier: str, sdkappid: int, key: str, now: float | None = None) -> int:
    """0 when `usersig` is a valid, unexpired signature of `identifier` for `sdkappid`, else the IM error code.

    Checked in the order a server needs: parse, which app (whose key), whose sig, is it genuine, is it still valid.
    """
    data = decode_usersig(usersig)
    if data is None:
        return USERSIG_MALFORMED
    if str(data["TLS.sdkappid"]) != str(sdkappid):
        return USERSIG_SDKAPPID_MISMATCH
    if str(data["TLS.identifier"]) != identifier:
        return USERSIG_IDENTIFIER_MISMATCH
    if not hmac.compare_digest(str(data["TLS.sig"]), expected_sig(data, key)):
        return USERSIG_BAD_SIGNATURE
    now = time.time() if now is None else now
    if int(data["TLS.time"]) + int(data["TLS.expire"]) < now:
        return USERSIG_EXPIRED
    return 0
