"""The IM client against the emulator: typed errors from HTTP 200 answers, partial results, limits, timeouts."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.im import AccountNotFound, GroupExists, GroupNotFound, IMAuthError, IMClient, IMError, IMRetriableError
from bridge.sandbox.im import create_app as create_im
from bridge.sandbox.server import BackgroundServer
from tests.conftest import IM_KEY, SDKAPPID, set_faults


@pytest.fixture
async def im(im_server: BackgroundServer):  # type: ignore[no-untyped-def]
    client = IMClient(im_server.url, SDKAPPID, IM_KEY)
    yield client
    await client.close()


async def test_group_life(im: IMClient) -> None:
    await im.import_account("c1")
    await im.import_account("c1")  # idempotent
    await im.create_group("G-life", "A subject that is far longer than thirty bytes", members=["c1"])
    with pytest.raises(GroupExists):
        await im.create_group("G-life", "again", members=["c1"])
    info = await im.get_group("G-life")
    assert info is not None and len(info["Name"].encode()) <= 30
    await im.import_account("a1")
    assert await im.add_members("G-life", ["a1"]) == {"a1": 1}
    assert await im.add_members("G-life", ["a1"]) == {"a1": 2}, "already a member"
    assert sorted(await im.member_ids("G-life")) == ["a1", "c1"]
    await im.delete_members("G-life", ["a1", "never-a-member"])
    await im.mute_all("G-life", True)
    await im.system_notification("G-life", "hello")
    sent = await im.send_text("G-life", "hi", random_=42)
    assert sent["ActionStatus"] == "OK"
    await im.destroy_group("G-life")
    assert await im.get_group("G-life") is None
    with pytest.raises(GroupNotFound):
        await im.destroy_group("G-life")


async def test_unknown_account_is_typed(im: IMClient) -> None:
    await im.import_account("c2")
    await im.create_group("G-acc", "x", members=["c2"])
    with pytest.raises(AccountNotFound):
        await im.add_members("G-acc", ["nobody-imported-me"])


async def test_wrong_key_is_an_auth_error(im_server: BackgroundServer) -> None:
    client = IMClient(im_server.url, SDKAPPID, "not-the-key")
    try:
        with pytest.raises(IMAuthError) as info:
            await client.import_account("x")
        assert info.value.upstream_code == 70009 and "not-the-key" not in str(info.value)
    finally:
        await client.close()


async def test_injected_internal_error_and_outage_are_retriable(im: IMClient, im_server: BackgroundServer) -> None:
    set_faults(im_server, error_rate=1.0)
    with pytest.raises(IMRetriableError) as info:
        await im.import_account("x")
    assert info.value.upstream_code == 70500
    set_faults(im_server, outage=True, status=503)
    with pytest.raises(IMRetriableError):
        await im.get_group("anything")
    set_faults(im_server, outage=True, status=400)
    with pytest.raises(IMError):
        await im.get_group("anything")
    set_faults(im_server)


@pytest.mark.parametrize(
    ("code", "retriable"),
    [(10002, True), (10006, True), (60007, True), (60008, True), (70500, True), (80002, False), (10024, False)],
)
async def test_error_codes_retried_only_where_tencent_says_so(
    im: IMClient, im_server: BackgroundServer, code: int, retriable: bool
) -> None:
    """10006 (group service frequency limit) and 60008 (service timeout) are worth a retry; 80002 (body over 8 KB)
    and 10024 (already handled) never succeed on a retry."""
    await im.create_group("G-codes", "Codes", members=[])
    set_faults(im_server, error_rate=1.0, code=code, paths=["/v4/group_open_http_svc/send_group_system_notification"])
    try:
        with pytest.raises((IMError, IMRetriableError)) as info:
            await im.system_notification("G-codes", "hello")
    finally:
        set_faults(im_server)
    assert info.value.upstream_code == code
    assert isinstance(info.value, IMRetriableError) == retriable


async def test_timeout_is_retriable(im_server: BackgroundServer) -> None:
    client = IMClient(im_server.url, SDKAPPID, IM_KEY, timeout=0.2)
    set_faults(im_server, latency=0.5)
    try:
        with pytest.raises(IMRetriableError, match="timed out"):
            await client.import_account("slow")
    finally:
        set_faults(im_server)
        await client.close()


async def test_unreachable_is_retriable() -> None:
    client = IMClient("http://127.0.0.1:9", SDKAPPID, IM_KEY, timeout=2)
    try:
        with pytest.raises(IMRetriableError, match="could not be reached"):
            await client.import_account("x")
    finally:
        await client.close()


async def test_own_rate_limit_waits_instead_of_failing() -> None:
    # The emulator refuses more than 20 calls of a command in one second, as IM does with 200; a client set to the
    # same limit, sent 80 calls at once, spaces them and meets no refusal (a bucket of 20 would burst past it).
    with BackgroundServer(create_im(SDKAPPID, IM_KEY, rate_limit=20)) as server:
        client = IMClient(server.url, SDKAPPID, IM_KEY, rate_limit=20)
        try:
            start = time.monotonic()
            await asyncio.gather(*(client.import_account(f"u{n}") for n in range(80)))
            elapsed = time.monotonic() - start
        finally:
            await client.close()
    assert elapsed >= 3.5, "80 calls at 20/s take about four seconds"


async def test_admin_usersig_is_reused(im: IMClient) -> None:
    first = im._admin_sig()
    assert im._admin_sig() is first
