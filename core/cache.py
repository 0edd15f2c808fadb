"""Cache keys and the in-memory result cache.

A node's cache key is a hash of its type, version and literal inputs (the static part,
written once per plan) and of what flows into it at run time: the values of the graph
inputs it reads and the keys of the upstream outputs it links to. So a change anywhere
changes the key of every node downstream of it, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any


def _json_default(value: Any) -> Any:
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    raise TypeError(f"{type(value).__name__} has no stable JSON form")


def canonical_json(value: Any) -> str:
    """Stable JSON for hashing; raises TypeError for values without a stable form."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default, ensure_ascii=False)


_SCALARS = (str, int, float, bool, type(None))


def value_token(value: Any) -> str | None:
    """A graph input value's part of the cache keys of the nodes reading it; None when the
    value has no stable form (those nodes are then not cached)."""
    try:
        return canonical_json(value)
    except (TypeError, ValueError):
        return None


def static_part(node_type: str, version: int, literals: Mapping[str, Any]) -> str:
    """The part of a cache key fixed by the graph itself (type, version, literal inputs).

    Kept as text and hashed together with the run-time part by `cache_key`.
    """
    if len(literals) == 1:  # the common case, without the list: this runs once per node of every new graph
        for name, value in literals.items():
            if type(value) in _SCALARS:
                return f"{node_type}\x00{version}\x00{name}\x01{value!r}"
    parts = [node_type, str(version)]
    for name in sorted(literals) if len(literals) > 1 else literals:
        value = literals[name]
        if type(value) in _SCALARS:  # the repr of these tells value and type apart: 1, 1.0, '1', True, None
            parts.append(f"{name}\x01{value!r}")
        else:
            parts.append(f"{name}\x02{canonical_json(value)}")
    return "\x00".join(parts)


def cache_key(parts: list[str]) -> str:
    """Hash the static part and the run-time parts (port names with values or upstream keys)."""
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).hexdigest()


def linked_cache_key(static: str, port: str, upstream: str, output: str) -> str:
    """`cache_key([static, port, upstream, output])` without building the list: the key of a node whose
    only run-time input is one link, as in a chain (this runs once per node of every run)."""
    return hashlib.blake2b(f"{static}\x00{port}\x00{upstream}\x00{output}".encode(), digest_size=16).hexdigest()


class ResultCache:
    """A thread-safe LRU map of cache key -> node outputs, bounded by entry count."""

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    # get and put take the lock with acquire/release rather than `with`: on Python 3.11 a `with`
    # on a lock allocates two bound methods, and these run once per node of every run

    def get(self, key: str) -> dict[str, Any] | None:
        lock = self._lock
        lock.acquire()
        try:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found
        finally:
            lock.release()

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        if self.max_entries == 0:
            return
        entries = self._entries
        lock = self._lock
        lock.acquire()
        try:
            entries[key] = outputs
            entries.move_to_end(key)
            while len(entries) > self.max_entries:
                entries.popitem(last=False)
        finally:
            lock.release()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def close(self) -> None:
        """Release what the cache holds outside memory (nothing here; subclasses may keep more)."""
