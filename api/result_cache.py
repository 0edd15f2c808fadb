"""The local executor's result cache, kept in the API database as well as in memory.

When a node succeeds, the executor puts its outputs in the cache under the node's cache key;
this cache also hands them to a writer thread that stores them in `node_results` (encoded by
`nodeloom.core.values`: JSON, large outputs spilled to the artifact store). After the API
restarts, a resumed or re-submitted run finds the nodes that had already succeeded there and
does not run them again. Outputs with no JSON form (an in-process model handle) stay in
memory only. Rows older than `ttl` seconds are deleted as new ones arrive.

The executor looks the cache up while it holds a run's lock, so a lookup reads the database
only for keys known to be stored there by an earlier process: the keys are read once at
start-up, and every other miss costs a set lookup.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

from nodeloom.api import tables  # noqa: F401 - defines the tables of SQLModel.metadata
from nodeloom.api.db import write_lock
from nodeloom.api.writer import BatchWriter
from nodeloom.core.artifacts import ArtifactStore
from nodeloom.core.cache import ResultCache
from nodeloom.core.errors import NodeExecutionError, NodeloomError
from nodeloom.core.values import decode_outputs, encode_outputs

log = logging.getLogger("nodeloom.api")

_RESULTS = SQLModel.metadata.tables["node_results"]

#: how often the writer deletes expired rows
PRUNE_EVERY = 600.0


class DurableResultCache(ResultCache):
    """An in-memory LRU (`max_entries`) in front of the `node_results` table."""

    def __init__(
        self,
        engine: Engine,
        artifacts: ArtifactStore,
        *,
        max_entries: int = 100_000,
        ttl: float = 7 * 86400,
        inline_limit: int = 64 * 1024,
    ) -> None:
        super().__init__(max_entries)
        self.engine = engine
        self.artifacts = artifacts
        self.ttl = ttl
        self.inline_limit = inline_limit
        self._pruned_at = 0.0
        self._stored: set[str] = set()
        self._prune()
        with engine.connect() as connection:
            self._stored.update(connection.execute(select(_RESULTS.c.key)).scalars())
        self._writer: BatchWriter[tuple[str, dict[str, Any]]] = BatchWriter(
            "nodeloom-api-results", self._store, max_batch=200)

    def get(self, key: str) -> dict[str, Any] | None:
        found = super().get(key)
        if found is not None or key not in self._stored:
            return found
        loaded = self._load(key)
        if loaded is not None:
            super().put(key, loaded)
        return loaded

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        super().put(key, outputs)
        if key not in self._stored:
            self._writer.put((key, outputs))

    def clear(self) -> None:
        """Forget every result, in memory and in the database."""
        super().clear()
        self._writer.flush()
        with write_lock(self.engine), self.engine.begin() as connection:
            connection.execute(delete(_RESULTS))
        self._stored.clear()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every result put so far is stored; False on timeout."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        self._writer.close()

    def _load(self, key: str) -> dict[str, Any] | None:
        try:
            with self.engine.connect() as connection:
                text = connection.execute(select(_RESULTS.c.outputs).where(_RESULTS.c.key == key)).scalar()
            if text is None:
                self._stored.discard(key)
                return None
            return decode_outputs(text, self.artifacts)
        except (SQLAlchemyError, NodeloomError, OSError, ValueError):
            # a lost row or a spilled artifact that is gone: the node runs again
            log.warning("could not read the stored result %s; the node will run again", key, exc_info=True)
            return None

    def _store(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        now = time.time()
        rows: list[dict[str, Any]] = []
        for key, outputs in batch:
            try:
                rows.append({"key": key, "outputs": encode_outputs(outputs, self.artifacts, self.inline_limit, key),
                             "created_at": now})
            except NodeExecutionError:  # no JSON form: kept in memory only
                continue
        if rows:
            dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
            with write_lock(self.engine), self.engine.begin() as connection:
                connection.execute(dialect.insert(_RESULTS).on_conflict_do_nothing(), rows)
            self._stored.update(row["key"] for row in rows)
        if now - self._pruned_at >= PRUNE_EVERY:
            self._prune()

    def _prune(self) -> None:
        self._pruned_at = now = time.time()
        if self.ttl <= 0:
            return
        expired = _RESULTS.c.created_at < now - self.ttl
        with write_lock(self.engine), self.engine.begin() as connection:
            keys = list(connection.execute(select(_RESULTS.c.key).where(expired)).scalars())
            if keys:
                connection.execute(delete(_RESULTS).where(expired))
        self._stored.difference_update(keys)
