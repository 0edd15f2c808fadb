"""The Redis result cache as a `ResultCache`, for nodes that run other nodes on a worker.

The dispatcher looks whole nodes up in the run store's cache itself; a node that runs other
nodes (control.map's items) gets this view of the same cache in its `NodeContext`, so an
item computed by one worker is a hit for every other worker and every later run. Values
are encoded as the store keeps node outputs (`nodeloom.core.values`: JSON inline, large
ones spilled to the artifact store). An entry that cannot be read is a miss; outputs with no
JSON form are not cached.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from nodeloom.core.artifacts import ArtifactStore
from nodeloom.core.cache import ResultCache
from nodeloom.core.errors import NodeloomError
from nodeloom.core.values import decode_outputs, encode_outputs
from nodeloom.executors.celery.store import RunStore

log = logging.getLogger("nodeloom.celery")


class StoredResults(ResultCache):
    """`get`/`put` of node outputs by cache key, kept in the run store's Redis result cache."""

    def __init__(self, store: RunStore, artifacts: ArtifactStore, inline_limit: int) -> None:
        super().__init__(max_entries=0)  # nothing kept in this process: every worker shares Redis
        self.store = store
        self.artifacts = artifacts
        self.inline_limit = inline_limit

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            text = self.store.cached(key)
            found = None if text is None else decode_outputs(text, self.artifacts)
        except (ValueError, KeyError, TypeError, OSError, NodeloomError, redis.RedisError):
            log.warning("cached result %s could not be read; running again", key, exc_info=True)
            found = None
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        try:
            self.store.put_cached(key, encode_outputs(outputs, self.artifacts, self.inline_limit, key))
        except NodeloomError:
            return  # outputs with no JSON form (a loaded model) stay out of the shared cache
        except redis.RedisError:
            log.warning("could not cache result %s", key, exc_info=True)
