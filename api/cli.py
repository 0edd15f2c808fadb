"""`nodeloom serve` and `nodeloom keys`: run the API server, and manage API keys from a shell."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sqlalchemy import Engine

from nodeloom.api.settings import EXECUTOR_KINDS, ApiSettings, default_db_url

_DB_HELP = "Database URL: sqlite:///path.db or postgresql://user@host:5432/db [env NODELOOM_DB_URL]."


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--db-url", envvar="NODELOOM_DB_URL", default=None,
              help=_DB_HELP + " Default: ~/.local/share/nodeloom/nodeloom.db.")
@click.option("--executor", type=click.Choice(["pool", "celery", "local"]), envvar="NODELOOM_EXECUTOR", default="pool",
              show_default=True,
              help="pool: run graphs in worker processes of this server (no node code runs in the process "
                   "answering HTTP); celery: only enqueue them for `nodeloom worker`s; local: run them inside "
                   "the API process (development only: a busy node slows every request) [env NODELOOM_EXECUTOR].")
@click.option("--workers", type=click.IntRange(1, 256), envvar="NODELOOM_WORKERS", default=None,
              help="Worker processes of the pool executor; each runs one run at a time "
                   "[env NODELOOM_WORKERS; default: one per core, at least 2].")
@click.option("--artifacts", envvar="NODELOOM_ARTIFACTS", type=click.Path(file_okay=False), default=None,
              help="Artifact folder [env NODELOOM_ARTIFACTS; default $NODELOOM_HOME/artifacts].")
@click.option("--node-module", "node_modules", multiple=True, metavar="MODULE",
              help="Also register the nodes of this Python module (repeatable).")
@click.option("--allow-private-network", is_flag=True, envvar="NODELOOM_ALLOW_PRIVATE_NETWORK", default=False,
              help="Let runs' network nodes (http.request, webhook.post) reach private and loopback addresses, "
                   "e.g. a webhook receiver on this machine or an intranet; off, public addresses only "
                   "[env NODELOOM_ALLOW_PRIVATE_NETWORK].")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True)
def serve(host: str, port: int, db_url: str | None, executor: str, workers: int | None, artifacts: str | None,
          node_modules: tuple[str, ...], allow_private_network: bool, log_level: str) -> None:
    """Run the REST API server; runs execute in its worker processes (or on Celery workers).

    \b
    Start-up upgrades the database schema, keeping its data, and starts the worker processes
    (a node past its timeout has its worker killed and replaced). Runs that were in flight when
    the server last stopped are followed again (Celery) or marked `interrupted` (pool, local;
    run them again with POST /v1/runs/{id}/resume).
    Create the first key with `nodeloom keys create --project NAME --scopes admin`.
    API docs: http://HOST:PORT/docs, schema: /openapi.json.
    """
    import uvicorn

    from nodeloom.api.app import create_app

    kind = next(known for known in EXECUTOR_KINDS if known == executor)
    # the NODELOOM_* variables (limits, schedules, drafting) first, then what the options say
    settings = dataclasses.replace(
        ApiSettings.from_env(), db_url=db_url or default_db_url(), executor=kind, workers=workers,
        artifacts=Path(artifacts) if artifacts else None, node_modules=node_modules,
        allow_private_network=allow_private_network,
    )
    _engine(settings.db_url).dispose()  # a bad URL or an unreachable database: a message, not a traceback
    click.echo(f"nodeloom API on http://{host}:{port} ({settings.executor} executor"
               f"{_worker_count(settings)}, {_redacted(settings.db_url)})", err=True)
    # the standard asyncio loop, not uvloop: under 100 saturating clients uvloop left ~1 % of reads
    # waiting 150-600 ms (p99 145-320 ms) where asyncio serves them in order (p99 17 ms) at the
    # same throughput (bench/api_load.py, wrk --latency)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, loop="asyncio")


def _worker_count(settings: ApiSettings) -> str:
    if settings.executor != "pool":
        return ""
    from nodeloom.executors.pool import default_worker_count

    return f", {settings.workers or default_worker_count()} worker processes"


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "database"


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (directly in the database; no server needed)."""


def _engine(db_url: str | None) -> Engine:
    """An engine on the database, its schema upgraded; a `ClickException` naming the problem otherwise."""
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from nodeloom.api.db import make_engine, upgrade_database

    url = db_url or default_db_url()
    try:
        engine = make_engine(url)
    except (ArgumentError, ValueError) as error:
        raise click.BadParameter(f"{url!r} is not a database URL: {error}", param_hint="--db-url") from None
    except ImportError as error:
        raise click.ClickException(f"the driver for {_redacted(url)} is not installed: {error}") from None
    try:
        upgrade_database(engine)
    except (SQLAlchemyError, OSError) as error:
        cause = getattr(error, "orig", None) or error
        raise click.ClickException(f"cannot open the database {_redacted(url)}: {cause}") from None
    return engine


@keys.command("create")
@click.option("--project", required=True, help="The project the key belongs to; it sees only this project's data.")
@click.option("--scopes", default="read,run", show_default=True,
              help="Comma-separated: read (look), run (also write graphs, start/cancel runs), admin (also keys).")
@click.option("--name", default="", help="A note saying what the key is for.")
@click.option("--db-url", envvar="NODELOOM_DB_URL", default=None, help=_DB_HELP)
def create(project: str, scopes: str, name: str, db_url: str | None) -> None:
    """Create a key and print it once on stdout (only its hash is stored).

    \b
    Bootstrap the first admin key of a project:
      export NODELOOM_KEY=$(nodeloom keys create --project acme --scopes admin)
    """
    from nodeloom.api.auth import create_key, parse_scopes

    try:
        parsed = parse_scopes(scopes.split(","))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--scopes") from None
    try:
        secret, info = create_key(_engine(db_url), project, parsed, name)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--project") from None
    click.echo(f"created key {info.id} for project {info.project!r} with scopes "
               f"{','.join(s.value for s in info.scopes)}; it is shown only now:", err=True)
    click.echo(secret)


@keys.command("list")
@click.option("--project", default=None, help="Only this project's keys.")
@click.option("--db-url", envvar="NODELOOM_DB_URL", default=None, help=_DB_HELP)
def list_keys(project: str | None, db_url: str | None) -> None:
    """List keys (id, project, scopes, prefix, revoked or not); never their secrets."""
    from sqlmodel import Session, col, select

    from nodeloom.api.tables import ApiKeyRow

    with Session(_engine(db_url)) as session:
        query = select(ApiKeyRow).order_by(col(ApiKeyRow.created_at))
        if project:
            query = query.where(ApiKeyRow.project == project)
        for row in session.exec(query).all():
            state = "revoked" if row.revoked_at is not None else "active"
            click.echo(f"{row.id}  {row.project}  {row.scopes}  nl_{row.prefix}_…  {state}  {row.name}")


@keys.command("revoke")
@click.argument("key_id")
@click.option("--db-url", envvar="NODELOOM_DB_URL", default=None, help=_DB_HELP)
def revoke(key_id: str, db_url: str | None) -> None:
    """Revoke the key KEY_ID (servers stop accepting it within a few seconds)."""
    import time

    from sqlmodel import Session

    from nodeloom.api.tables import ApiKeyRow

    with Session(_engine(db_url)) as session:
        row = session.get(ApiKeyRow, key_id)
        if row is None:
            click.echo(f"no key {key_id!r}", err=True)
            sys.exit(1)
        if row.revoked_at is None:
            row.revoked_at = time.time()
            session.add(row)
            session.commit()
    click.echo(f"revoked {key_id}", err=True)


__all__ = ["keys", "serve"]
