"""The API's durable result cache: node results outlive the process, on SQLite and on PostgreSQL.

Each test opens the cache, stores through it, closes it, and opens a second one on the same
database, as a restarted server would.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from databases import KINDS, database_url
from sqlalchemy import Engine, func, select, update

from nodeloom.api.db import make_engine, upgrade_database
from nodeloom.api.result_cache import DurableResultCache
from nodeloom.api.tables import NodeResultRow
from nodeloom.core import Graph
from nodeloom.core.artifacts import ArtifactRef, LocalArtifactStore
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry import NodeRegistry


@pytest.fixture(params=KINDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with database_url(request.param, tmp_path, "nl_res") as url:
        made = make_engine(url)
        upgrade_database(made)
        yield made
        made.dispose()


@pytest.fixture
def artifacts(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def _rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(NodeResultRow)).scalar_one())


def test_results_come_back_after_a_restart_with_artifacts_revived(engine: Engine,
                                                                  artifacts: LocalArtifactStore) -> None:
    picture = artifacts.put_bytes(b"\x89PNG not really", "image/png")
    first = DurableResultCache(engine, artifacts)
    first.put("k-text", {"text": "Hello", "scores": [1, 2.5, None]})
    first.put("k-image", {"image": picture, "caption": "a card"})
    assert first.flush()
    first.close()

    second = DurableResultCache(engine, artifacts)
    assert len(second) == 0  # nothing in memory: what follows is read from the database
    assert second.get("k-text") == {"text": "Hello", "scores": [1, 2.5, None]}
    image = second.get("k-image")
    assert image is not None and isinstance(image["image"], ArtifactRef)
    assert artifacts.read_bytes(image["image"]) == b"\x89PNG not really"
    assert second.get("k-unknown") is None
    second.close()


def test_large_outputs_spill_to_the_artifact_store(engine: Engine, artifacts: LocalArtifactStore) -> None:
    big = {"text": "x" * 5000}
    cache = DurableResultCache(engine, artifacts, inline_limit=1000)
    cache.put("k-big", big)
    assert cache.flush()
    cache.close()
    with engine.connect() as connection:
        stored = connection.execute(select(NodeResultRow.outputs)).scalar_one()
    assert len(stored) < 1000 and "$spilled" in json.loads(stored)
    assert DurableResultCache(engine, artifacts).get("k-big") == big


def test_outputs_without_a_json_form_stay_in_memory_only(engine: Engine, artifacts: LocalArtifactStore) -> None:
    handle = object()
    cache = DurableResultCache(engine, artifacts)
    cache.put("k-model", {"pipeline": handle})
    cache.put("k-nan", {"value": float("nan")})
    cache.put("k-plain", {"value": 1})
    assert cache.flush()
    assert cache.get("k-model") == {"pipeline": handle}
    assert _rows(engine) == 1
    cache.close()
    assert DurableResultCache(engine, artifacts).get("k-model") is None


def test_expired_rows_are_deleted_and_clear_forgets_everything(engine: Engine,
                                                               artifacts: LocalArtifactStore) -> None:
    cache = DurableResultCache(engine, artifacts, ttl=3600)
    cache.put("k-old", {"value": 1})
    cache.put("k-new", {"value": 2})
    assert cache.flush()
    cache.close()
    with engine.begin() as connection:  # k-old was stored two hours ago
        connection.execute(update(NodeResultRow.__table__).where(NodeResultRow.__table__.c.key == "k-old")
                           .values(created_at=time.time() - 7200))
    reopened = DurableResultCache(engine, artifacts, ttl=3600)
    assert reopened.get("k-old") is None and reopened.get("k-new") == {"value": 2}
    assert _rows(engine) == 1
    reopened.clear()
    assert _rows(engine) == 0 and reopened.get("k-new") is None
    reopened.close()


def test_a_rerun_on_a_new_executor_takes_every_node_from_the_database(
    engine: Engine, artifacts: LocalArtifactStore, registry: NodeRegistry, journal: Any,  # conftest.Journal
) -> None:
    label = f"durable-{uuid.uuid4().hex[:6]}"
    graph = Graph()
    a = graph.add("test.count", "a", label=f"{label}-a", value=1.5)
    b = graph.add("test.count", "b", label=f"{label}-b", value=a["value"])
    graph.output("v", b["value"])

    with LocalExecutor(registry, artifacts=artifacts, cache=DurableResultCache(engine, artifacts)) as executor:
        first = executor.run(graph)
        cache = executor.cache
        assert isinstance(cache, DurableResultCache) and cache.flush()
    assert first.outputs == {"v": 1.5}
    assert journal.count(f"{label}-a") == journal.count(f"{label}-b") == 1

    with LocalExecutor(registry, artifacts=artifacts, cache=DurableResultCache(engine, artifacts)) as executor:
        again = executor.run(graph)
    assert again.outputs == {"v": 1.5}
    assert {node.state.value for node in again.nodes.values()} == {"cached"}
    assert journal.count(f"{label}-a") == journal.count(f"{label}-b") == 1  # nothing ran a second time
