"""Alembic migrations of the API database: from empty, and from the previous revision with data kept.

Run on a SQLite file and on PostgreSQL (a schema of its own in the `test` database).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import KINDS, database_url
from sqlalchemy import Engine, inspect, text

from nodeloom.api.db import current_revision, head_revision, make_engine, upgrade_database


@pytest.fixture(params=KINDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with database_url(request.param, tmp_path / "db", "nl_mig") as url:  # SQLite: make_engine makes the folder
        made = make_engine(url)
        yield made
        made.dispose()


def test_upgrade_from_an_empty_database_creates_every_table(engine: Engine) -> None:
    assert current_revision(engine) is None
    upgrade_database(engine)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"api_keys", "graphs", "graph_tags", "graph_versions", "runs", "run_nodes", "run_events"} <= tables
    upgrade_database(engine)  # a second upgrade (every server start) changes nothing
    assert current_revision(engine) == head_revision()


def test_the_migrations_build_the_schema_the_tables_describe(engine: Engine) -> None:
    """`tables.py` (what the code reads and writes) and the migrations (what databases get) agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    upgrade_database(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def test_upgrade_from_the_first_revision_keeps_the_data(engine: Engine) -> None:
    upgrade_database(engine, "0001")
    assert "tags" not in {column["name"] for column in inspect(engine).get_columns("graphs")}
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO graphs (id, project, name, description, latest_version, created_at, updated_at) "
            "VALUES ('g1', 'alpha', 'kept', 'from revision 0001', 1, 1.0, 2.0)"))
        connection.execute(text(
            "INSERT INTO graph_versions (graph_id, version, document, created_at) "
            "VALUES ('g1', 1, '{\"name\": \"kept\"}', 1.0)"))
    upgrade_database(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        row = connection.execute(text("SELECT name, description FROM graphs WHERE id = 'g1'")).one()
        document = connection.execute(text("SELECT document FROM graph_versions WHERE graph_id = 'g1'")).scalar_one()
        tags = connection.execute(text("SELECT tag FROM graph_tags WHERE graph_id = 'g1'")).all()
    assert (row.name, row.description) == ("kept", "from revision 0001")
    assert _json(document) == {"name": "kept"}
    assert tags == []


def test_tags_move_to_their_own_rows_and_back(engine: Engine) -> None:
    upgrade_database(engine, "0002")
    with engine.begin() as connection:
        for graph_id, tags in (("g1", '["video", "demo"]'), ("g2", "[]"), ("g3", '["demo"]')):
            connection.execute(text(
                "INSERT INTO graphs (id, project, name, description, tags, latest_version, created_at, updated_at) "
                "VALUES (:id, 'alpha', :id, '', :tags, 1, 1.0, 2.0)"), {"id": graph_id, "tags": tags})
    upgrade_database(engine, "0003")
    assert "tags" not in {column["name"] for column in inspect(engine).get_columns("graphs")}
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT graph_id, tag FROM graph_tags ORDER BY graph_id, tag")).all()
    assert [tuple(row) for row in rows] == [("g1", "demo"), ("g1", "video"), ("g3", "demo")]

    from alembic import command

    from nodeloom.api.db import alembic_config

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    with engine.connect() as connection:
        back = dict(connection.execute(text("SELECT id, tags FROM graphs ORDER BY id")).all())
    assert {graph_id: _json(tags) for graph_id, tags in back.items()} == {
        "g1": ["demo", "video"], "g2": [], "g3": ["demo"]}
    assert "graph_tags" not in inspect(engine).get_table_names()


def test_the_client_imports_without_fastapi() -> None:
    code = ("import sys; sys.modules['fastapi'] = None; sys.modules['sqlmodel'] = None; "
            "from nodeloom.api.client import Client, AsyncClient; print(Client.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Client"


def test_keys_create_prints_only_the_key_and_refuses_unknown_scopes(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nodeloom.api.cli import keys

    db_url = f"sqlite:///{tmp_path / 'keys.db'}"
    refused = CliRunner().invoke(keys, ["create", "--project", "acme", "--scopes", "read,rn", "--db-url", db_url])
    assert refused.exit_code == 2 and "unknown scope 'rn'" in refused.output
    made = CliRunner().invoke(keys, ["create", "--project", "acme", "--scopes", "run", "--db-url", db_url])
    assert made.exit_code == 0
    key = made.stdout.strip()
    assert key.startswith("nl_") and "\n" not in key
    listed = CliRunner().invoke(keys, ["list", "--db-url", db_url])
    assert "acme" in listed.output and key not in listed.output  # the secret is never shown again


def test_an_unusable_database_url_is_a_message_not_a_traceback() -> None:
    from click.testing import CliRunner

    from nodeloom.api.cli import keys

    malformed = CliRunner().invoke(keys, ["list", "--db-url", "nonsense"])
    assert malformed.exit_code == 2 and "is not a database URL" in malformed.output
    unreachable = CliRunner().invoke(keys, ["list", "--db-url", "postgresql://postgres@127.0.0.1:1/none"])
    assert unreachable.exit_code == 1 and "cannot open the database" in unreachable.output
    assert "Traceback" not in malformed.output + unreachable.output
