"""The databases the API tests run on: a SQLite file, or a schema of their own in PostgreSQL.

PostgreSQL is the `test` database on 127.0.0.1:5432 (trust auth). When it is not running,
tests that need it fail under CI (`CI=true`) and are skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
KINDS = ["sqlite", "postgres"]


def require_postgres() -> None:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not running on 127.0.0.1:5432")
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")


@contextlib.contextmanager
def database_url(kind: str, folder: Path, prefix: str = "nl") -> Iterator[str]:
    """A URL for an empty database of `kind`: a SQLite file in `folder`, or a new PostgreSQL
    schema (its connections search only it), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'nodeloom.db'}"
        return
    require_postgres()
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
