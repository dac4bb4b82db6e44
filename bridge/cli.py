"""The `helpdesk-bridge` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bridge import auth
from bridge.config import (
    ConfigError,
    Settings,
    config_error,
    database_url,
    load_settings,
)
from bridge.logs import configure_logging
from bridge.migrations import SchemaError, current_revision, head_revision, prepare_database
from bridge.states import JobStatus
from connectors.base import ConnectorLoadError, load_connector_classes


class SigningSettings(BaseSettings):
    """`sign` needs only a signing secret, not the whole service configuration."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")
    bridge_callout_secret: SecretStr | None = None
    bridge_app_secret: SecretStr | None = None


class DatabaseSettings(BaseSettings):
    """`db` and `jobs` need only the database, not the whole service configuration."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")
    bridge_database_url: str = Settings.model_fields["bridge_database_url"].default

    @field_validator("bridge_database_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return database_url(value)


def _database_url() -> str:
    try:
        return DatabaseSettings().bridge_database_url
    except ValidationError as exc:
        raise config_error(exc) from None


def _reach_database(url: str) -> str | None:
    """The schema revision; a database that does not answer stops the command with one line, not a traceback."""
    try:
        return current_revision(url)
    except OperationalError as exc:  # refused, unknown host, wrong credentials, a SQLite file that cannot be opened
        parsed = make_url(url)
        reason = str(exc.orig or exc).splitlines()[0]
        if parsed.password:  # drivers are not known to echo it; make sure
            reason = reason.replace(parsed.password, "***")
        where = parsed.render_as_string(hide_password=True)
        raise ConfigError(f"BRIDGE_DATABASE_URL ({where}): the database cannot be reached: {reason}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.app import create_app
    from bridge.serving import bounded_protocol
    from bridge.workers import bind, default_workers, serve_forked

    settings = load_settings()
    load_connector_classes()  # a broken plugin stops the start here, with its name, not in the middle of startup
    _reach_database(settings.bridge_database_url)  # likewise a database that does not answer
    prepare_database(settings.bridge_database_url)  # and an outdated schema
    configure_logging()
    options: dict[str, Any] = {
        "log_level": "info",
        "proxy_headers": True,
        "http": bounded_protocol(settings),  # bounds header size and time, idle and too many connections
        "ws": "none",  # the bridge serves no WebSocket: an upgrade request is a plain HTTP request
    }
    workers = args.workers or default_workers(make_url(settings.bridge_database_url).get_backend_name() == "sqlite")
    if workers == 1:
        uvicorn.run(
            create_app(settings, prepare_schema=False), host=settings.bridge_host, port=settings.bridge_port, **options
        )
        return 0
    sock = bind(settings.bridge_host, settings.bridge_port)

    def run_worker(listening: Any) -> None:
        uvicorn.Server(uvicorn.Config(create_app(settings, prepare_schema=False), **options)).run(sockets=[listening])

    return serve_forked(workers, sock, run_worker)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bridge.sandbox.runner import run_sandbox

    return run_sandbox(port=args.port)


def cmd_usersig(args: argparse.Namespace) -> int:
    from bridge.models import UserSigBody
    from bridge.parsing import describe

    try:
        user_id = UserSigBody(userId=args.userid).userId  # POST /usersig's rule and Id normalisation
    except ValidationError as exc:
        print(f"helpdesk-bridge: {describe(exc)}", file=sys.stderr)
        return 2
    if user_id != args.userid:
        print(f"helpdesk-bridge: signed for {user_id}, the form the bridge uses for {args.userid}", file=sys.stderr)
    settings = load_settings()
    print(auth.gen_usersig(settings.im_sdkappid, settings.im_secret_key.get_secret_value(), user_id, args.expire))
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    name = "BRIDGE_APP_SECRET" if args.app else "BRIDGE_CALLOUT_SECRET"
    try:
        secret = getattr(SigningSettings(), name.lower())
    except Exception:
        secret = None
    if secret is None:
        raise ConfigError(f"{name} is required to sign calls")
    secret = secret.get_secret_value()
    try:
        body = Path(args.file).read_bytes() if args.file and args.file != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        print(f"helpdesk-bridge: cannot read {args.file}: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return 2
    for name, value in auth.signed_call_headers(secret, args.method, args.target, body).items():
        print(f"{name}: {value}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bridge import migrations

    url = _database_url()
    _reach_database(url)
    migrations.upgrade(url)
    print(f"database schema at {migrations.current_revision(url)}")
    return 0


async def _jobs(args: argparse.Namespace, database_url: str) -> int:
    from bridge.jobs import JobQueue
    from bridge.store import Database

    db = Database(database_url)
    queue = JobQueue(db)
    try:
        if args.jobs_command == "list":
            jobs = await queue.list(status=args.status, limit=args.limit)
            if args.json:
                print(json.dumps([job.public() for job in jobs], indent=2))
                return 0
            print(
                f"{'ID':>6}  {'KIND':<14} {'STATUS':<8} {'TRIES':>5}  {'NEXT ATTEMPT (UTC)':<19}  ORDERING / LAST ERROR"
            )
            for job in jobs:
                when = datetime.fromtimestamp(job.next_attempt_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
                print(
                    f"{job.id:>6}  {job.kind:<14} {job.status:<8} {job.attempts:>5}  {when}  "
                    f"{job.ordering_key or '-'}  {(job.last_error or '')[:80]}"
                )
            stats = await queue.stats()
            print(
                "totals: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["counts"].items()))
                if stats["counts"]
                else "totals: no jobs"
            )
            return 0
        if args.all_dead:
            count = await queue.retry(all_dead=True)
        elif args.id is not None:
            count = await queue.retry(job_id=args.id)
        else:
            print("give a job ID or --all-dead", file=sys.stderr)
            return 2
        print(f"{count} job(s) queued again")
        return 0 if count or args.all_dead else 1
    finally:
        await db.close()


def cmd_jobs(args: argparse.Namespace) -> int:
    url = _database_url()
    current, head = _reach_database(url), head_revision(url)
    if current != head:  # say so, rather than fail on a missing table or column
        raise SchemaError(
            f"the database schema is {'missing' if current is None else f'at {current}'}, this bridge needs {head}: "
            "run `helpdesk-bridge db upgrade`"
        )
    return asyncio.run(_jobs(args, url))


async def _check(settings: Settings) -> int:
    import anyio

    from bridge.app import build_connectors
    from bridge.im import IMClient

    failures = 0
    im = IMClient.from_settings(settings)
    try:
        await im.call("im_open_login_svc", "account_check", {"CheckItem": [{"UserID": settings.im_admin_userid}]})
        print(f"im: ok ({settings.im_api_base}, SDKAppID {settings.im_sdkappid}, admin {settings.im_admin_userid})")
    except Exception as exc:
        failures += 1
        print(f"im: FAILED: {exc}")
    finally:
        await im.close()
    connectors = build_connectors(settings, anyio.CapacityLimiter(4))
    if not connectors:
        print(f"helpdesks: none enabled (set the credentials of {' or '.join(settings.connectors) or 'a connector'})")
    for name, connector in connectors.items():
        try:
            await connector.start()
            print(f"{name}: ok ({await connector.check()})")
        except Exception as exc:
            failures += 1
            print(f"{name}: FAILED: {exc}")
        finally:
            await connector.close()
    return 1 if failures else 0


def cmd_check(args: argparse.Namespace) -> int:
    return asyncio.run(_check(load_settings()))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="helpdesk-bridge", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes serving the port (default: the number of cores on PostgreSQL, 1 on SQLite)",
    )
    serve.set_defaults(func=cmd_serve)
    sandbox = sub.add_parser("sandbox", help="run the service against built-in emulators, no accounts needed")
    sandbox.add_argument("--port", type=int, default=None, help="bridge port (default BRIDGE_PORT or 8000)")
    sandbox.set_defaults(func=cmd_sandbox)
    usersig = sub.add_parser("usersig", help="print a UserSig")
    usersig.add_argument("userid")
    usersig.add_argument("--expire", type=int, default=86400, help="seconds (default 86400)")
    usersig.set_defaults(func=cmd_usersig)
    sign = sub.add_parser("sign", help="print signed-call headers for a body (stdin by default)")
    sign.add_argument("--method", default="POST")
    sign.add_argument("--target", default="/joingroup", help="path and query as sent")
    sign.add_argument("--app", action="store_true", help="sign with BRIDGE_APP_SECRET (customer backends)")
    sign.add_argument("file", nargs="?")
    sign.set_defaults(func=cmd_sign)
    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="bring the schema up to date").set_defaults(func=cmd_db_upgrade)
    jobs = sub.add_parser("jobs", help="queued and failed work")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    jobs_list = jobs_sub.add_parser("list")
    jobs_list.add_argument("--status", choices=list(JobStatus))
    jobs_list.add_argument("--limit", type=int, default=100)
    jobs_list.add_argument("--json", action="store_true")
    jobs_list.set_defaults(func=cmd_jobs)
    jobs_retry = jobs_sub.add_parser("retry")
    jobs_retry.add_argument("id", type=int, nargs="?")
    jobs_retry.add_argument("--all-dead", action="store_true")
    jobs_retry.set_defaults(func=cmd_jobs)
    sub.add_parser("check", help="check the configuration and log in to every upstream").set_defaults(func=cmd_check)
    for connector in load_connector_classes().values():
        add_commands = getattr(connector, "add_commands", None)  # optional: a connector's own subcommands
        if add_commands is not None:
            add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)  # a connector that fails to load stops every command, with its name
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that went away (`| head`) shows up here, not at interpreter exit
        return code
    except BrokenPipeError:
        # Python's recipe: stdout to devnull so the flush at exit cannot fail again, then stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ConfigError, ConnectorLoadError, SchemaError) as exc:
        print(f"helpdesk-bridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
