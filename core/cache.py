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

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            self._entries[key] = outputs
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0
