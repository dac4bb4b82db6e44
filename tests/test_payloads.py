"""Job payloads have one model per kind, checked when stored and when read back; errors a job stored are rebuilt from
their code through the registry (bridge.errors.ERRORS)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import bridge.im
import bridge.service  # noqa: F401  (every error class of the core registered)
from bridge.errors import ERRORS, BridgeError, PermanentError, TooManyRequests, UpstreamError, rebuild
from bridge.jobs import JobQueue
from bridge.payloads import PAYLOADS, CreateTicket, Join, SyncMessage
from bridge.states import JobKind, JobStatus
from bridge.store import Database, Job
from tests.conftest import BridgeClient


def test_every_kind_has_its_model() -> None:
    assert set(PAYLOADS) == set(JobKind)
    assert all(model.kind is kind for kind, model in PAYLOADS.items())


def test_payloads_read_back_as_stored() -> None:
    message = SyncMessage.model_validate({"groupId": "G", "from": "cust1", "msgSeq": 7})
    assert message.stored() == {"groupId": "G", "from": "cust1", "msgSeq": 7}
    job = Job(kind=message.kind, key="k", payload_json='{"groupId": "G", "from": "cust1", "msgSeq": 7}')
    assert SyncMessage.of(job) == message
    assert SyncMessage.of(job).but(commentId="c1").commentId == "c1"
    request = {"userId": "u1", "caseInfo": {"subject": "Help"}}
    opening = CreateTicket.model_validate(
        {"provider": "zendesk", "request": request, "hash": "h", "requestKey": "k", "caller": "app"}
    )
    assert CreateTicket.model_validate(opening.stored()) == opening


@pytest.mark.parametrize(
    "payload",
    ['{"groupId": "G"}', '{"groupId": "G", "userId": 5}', '{"groupId": "G", "userId": "u", "extra": 1}', "[]"],
)
def test_a_payload_that_does_not_fit_its_kind_is_a_permanent_error(payload: str) -> None:
    job = Job(id=3, kind=JobKind.JOIN, key="k", payload_json=payload)
    with pytest.raises(PermanentError, match=r"job 3 \(join\) has a payload that is not a Join"):
        Join.of(job)
    with pytest.raises(ValueError):
        Join.model_validate({"groupId": "G", "userId": "u"}).but(userId=None)


def test_the_worker_fails_a_stored_job_whose_payload_does_not_fit(bridge: BridgeClient) -> None:
    async def store_and_wait() -> Job | None:
        db = Database(bridge.settings.bridge_database_url)
        queue = JobQueue(db)
        try:
            job, _ = await queue.enqueue(JobKind.JOIN, {"groupId": "G-bad"}, key="bad-payload")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                stored = await queue.get(job.id or 0)
                if stored and stored.status == JobStatus.DEAD:
                    return stored
                await asyncio.sleep(0.1)
            return await queue.get(job.id or 0)
        finally:
            await db.close()

    stored = asyncio.run(store_and_wait())
    assert stored and stored.status == JobStatus.DEAD and stored.attempts == 1, stored
    assert "not a Join: userId: Field required" in (stored.last_error or "")


def _instance(cls: type[BridgeError]) -> BridgeError:
    if issubclass(cls, bridge.im.IMError):
        return cls("IM said no", upstream_code=10010)
    if issubclass(cls, UpstreamError):
        return cls("upstream said no", upstream="zendesk", upstream_code="E1")
    if issubclass(cls, TooManyRequests):
        return cls("slow down", retry_after=3)
    return cls("it went wrong", details={"hint": "x"})


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_a_stored_error_is_rebuilt_as_what_it_was(code: str) -> None:
    original = _instance(ERRORS[code])
    again = rebuild(original.body()["error"], "unused")
    assert (type(again), again.status, again.body()) == (type(original), original.status, original.body())
    if isinstance(original, UpstreamError):
        assert isinstance(again, UpstreamError)
        assert (again.upstream, again.upstream_code) == (original.upstream, original.upstream_code)


@pytest.mark.parametrize(
    ("error", "body"),
    [
        (
            {"code": "requester_conflict", "message": "m", "upstream": "zendesk"},
            {"code": "requester_conflict", "message": "m", "upstream": "zendesk"},
        ),
        ({"code": "odd"}, {"code": "odd", "message": "fallback", "upstream": "upstream"}),
        ({}, {"code": "upstream_error", "message": "fallback", "upstream": "upstream"}),
    ],
)
def test_an_unregistered_code_is_an_upstream_failure(error: dict[str, Any], body: dict[str, Any]) -> None:
    again = rebuild(error, "fallback")
    assert isinstance(again, UpstreamError) and again.status == 502 and again.body() == {"error": body}
