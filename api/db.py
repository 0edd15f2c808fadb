"""The database: engines for SQLite and PostgreSQL URLs, and the Alembic upgrade run at start-up."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def normalise_url(url: str) -> str:
    """Use psycopg (version 3) for `postgresql://` and `postgres://` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while the event recorder writes; wait for a lock instead of failing
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


#: the attribute of a SQLite engine holding the lock its writing sessions take (see `_take_write_lock`)
_WRITE_LOCK = "nodeloom_write_lock"


def _take_write_lock(session: Session, *_: Any) -> None:
    """Before a session's first write on SQLite, wait for this process's other writers.

    SQLite has one writer at a time; a second writer sleeps in its busy handler (1 ms, then
    up to 100 ms at a time), which shows as latency spikes. Queueing the writers here wakes
    each one as soon as the previous transaction ends.
    """
    if _WRITE_LOCK in session.info:
        return
    lock = getattr(session.get_bind(), _WRITE_LOCK, None)
    if lock is not None:
        lock.acquire()
        session.info[_WRITE_LOCK] = lock


@contextlib.contextmanager
def write_lock(engine: Engine) -> Iterator[None]:
    """Hold this process's SQLite write lock (no-op on other databases) for a Core transaction."""
    lock = getattr(engine, _WRITE_LOCK, None)
    if lock is None:
        yield
        return
    with lock:
        yield


def _release_write_lock(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        lock = session.info.pop(_WRITE_LOCK, None)
        if lock is not None:
            lock.release()


event.listen(Session, "before_flush", _take_write_lock)
event.listen(Session, "after_transaction_end", _release_write_lock)


def make_engine(url: str) -> Engine:
    """An engine for `url`; a SQLite file's folder is created if missing."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, pool_size=20, max_overflow=40)
        event.listen(engine, "connect", _sqlite_pragmas)
        setattr(engine, _WRITE_LOCK, threading.Lock())
        return engine
    return create_engine(url, pool_size=10, max_overflow=30, pool_pre_ping=True)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (the newest by default), keeping the data."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head
