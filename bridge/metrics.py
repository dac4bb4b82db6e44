"""Prometheus metrics: one registry per app (so tests can build many), HTTP timings and job-queue gauges."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.states import JobStatus

JOB_STATUSES = tuple(JobStatus)
# Methods with a label of their own; any other (h11 passes any token, httptools dozens of WebDAV and other verbs)
# is "other", so a client cannot add a series per request.
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bridge_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "bridge_http_request_seconds", "HTTP request duration", ["route"], registry=self.registry
        )
        self.dropped_messages = Counter(
            "bridge_transcript_dropped_messages",
            "Chat messages not written into a ticket: not confirmed by IM, or from someone the link does not record",
            ["reason"],
            registry=self.registry,
        )
        self.transcript_comments = Counter(
            "bridge_transcript_comments",
            "Ticket comments the transcript wrote (each one ticket update)",
            registry=self.registry,
        )
        self.transcript_messages = Counter(
            "bridge_transcript_messages", "Chat messages the transcript wrote into tickets", registry=self.registry
        )
        self.transcript_rate_limited = Counter(
            "bridge_transcript_rate_limited",
            "Helpdesk 429s the transcript met and waited out (its pace should keep this at zero)",
            registry=self.registry,
        )
        self.jobs = Gauge("bridge_jobs", "Jobs in the durable queue by status", ["status"], registry=self.registry)
        self.oldest_pending = Gauge(
            "bridge_jobs_oldest_pending_seconds", "Age of the oldest pending job", registry=self.registry
        )
        self.db_transactions = Counter(
            "bridge_db_transactions", "Database transactions committed", registry=self.registry
        )
        self._db_commits_seen = 0

    def refresh(self, stats: dict[str, Any], commits: int) -> None:
        """Set the gauges from the job queue's `stats()` and the database's count of `commits`."""
        for status in JOB_STATUSES:
            self.jobs.labels(status).set(stats["counts"].get(status, 0))
        self.oldest_pending.set(stats["oldest_pending_age"])
        # The database counts its own commits (it knows nothing of metrics); the counter catches up when scraped
        # (from zero again if the app was started anew with a fresh database).
        self.db_transactions.inc(max(commits - self._db_commits_seen, 0))
        self._db_commits_seen = commits


class MetricsMiddleware:
    """Counts and times requests by route template, never by raw path (IDs would explode the label set), and by
    method only for KNOWN_METHODS."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = "unmatched"
        for candidate in scope["app"].router.routes if "app" in scope else []:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = getattr(candidate, "path", "unmatched")
                break
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
