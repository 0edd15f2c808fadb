"""The result cache kept on disk, shared by every local process: `$NODELOOM_HOME/cache.sqlite`.

SQLite because it is in the standard library, one file, and safe for several processes at
once: WAL mode lets readers work while one process writes, and a busy timeout makes writers
wait for each other instead of failing. Rows map a cache key to a node's outputs encoded by
`nodeloom.core.values` (JSON inline, large outputs spilled to the artifact store), with their
size and when they were last used; when the total passes `max_bytes` the least recently used
rows are deleted. An in-memory LRU sits in front (it also keeps outputs with no JSON form,
such as a loaded model, which are never written to disk).

The file is a cache, so nothing in it may break a run: a row that cannot be decoded is a
miss (and is deleted), a file that is not a SQLite database is renamed aside and recreated,
and if the disk cannot be used at all the cache carries on in memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from nodeloom.core.artifacts import ArtifactStore, default_artifact_root
from nodeloom.core.cache import ResultCache
from nodeloom.core.errors import NodeExecutionError, NodeloomError, UsageError
from nodeloom.core.values import decode_outputs, encode_outputs

log = logging.getLogger("nodeloom.cache")

#: the default bound on the bytes the cache file keeps (NODELOOM_CACHE_MAX_BYTES overrides it)
DEFAULT_MAX_BYTES = 1 << 30
#: how long a writer waits for another process's write lock, in milliseconds
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    outputs TEXT NOT NULL,
    size INTEGER NOT NULL,
    last_used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_last_used ON results (last_used);
CREATE TABLE IF NOT EXISTS stats (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def default_cache_path() -> Path:
    """`$NODELOOM_HOME/cache.sqlite` (`~/.nodeloom/cache.sqlite` by default), beside the artifacts."""
    return default_artifact_root().parent / "cache.sqlite"


def default_max_bytes() -> int:
    text = os.environ.get("NODELOOM_CACHE_MAX_BYTES")
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        return max(int(text), 0)
    except ValueError:
        raise UsageError(f"NODELOOM_CACHE_MAX_BYTES must be a whole number of bytes, not {text!r}") from None


class DiskResultCache(ResultCache):
    """An in-memory LRU (`max_entries`) in front of a SQLite file bounded by `max_bytes`."""

    def __init__(
        self,
        artifacts: ArtifactStore,
        path: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int | None = None,
        max_entries: int = 100_000,
        inline_limit: int = 64 * 1024,
    ) -> None:
        super().__init__(max_entries)
        self.artifacts = artifacts
        self.path = Path(path) if path is not None else default_cache_path()
        self.max_bytes = default_max_bytes() if max_bytes is None else max_bytes
        self.inline_limit = inline_limit
        self._db_lock = threading.Lock()
        self._pending_hits = 0
        self._pending_misses = 0
        self._touched: set[str] = set()
        self._db: sqlite3.Connection | None = self._open()

    # -- opening -----------------------------------------------------------------
    def _open(self) -> sqlite3.Connection | None:
        try:
            return self._connect()
        except sqlite3.DatabaseError:
            log.warning("the result cache %s is not a usable SQLite file; setting it aside", self.path)
            self._set_aside()
        except OSError:
            log.warning("cannot open the result cache %s; caching in memory only", self.path, exc_info=True)
            return None
        try:
            return self._connect()
        except (sqlite3.Error, OSError):
            log.warning("cannot recreate the result cache %s; caching in memory only", self.path, exc_info=True)
            return None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # a crash may lose the last results, never corrupt the file
            db.executescript(_SCHEMA)
            db.execute("SELECT count(*) FROM results").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            try:
                source.rename(f"{self.path}.corrupt-{stamp}-{os.getpid()}{suffix}")
            except FileNotFoundError:
                continue
            except OSError:
                log.warning("cannot move %s aside", source, exc_info=True)

    # -- the ResultCache protocol ------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        found = super().get(key)
        if found is not None:
            self._touched.add(key)
            self._pending_hits += 1
            return found
        loaded = self._load(key)
        if loaded is None:
            self._pending_misses += 1
            return None
        self.misses -= 1
        self.hits += 1
        self._pending_hits += 1
        super().put(key, loaded)
        return loaded

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        super().put(key, outputs)
        if self._db is None:
            return
        try:
            text = encode_outputs(outputs, self.artifacts, self.inline_limit, key)
        except NodeExecutionError:  # no JSON form: kept in memory only
            return
        except (NodeloomError, OSError):
            log.warning("cannot spill the result %s to the artifact store", key, exc_info=True)
            return
        self._write(key, text, _stored_size(text))

    def clear(self) -> None:
        """Forget every result, in memory and on disk, and reset the counters."""
        super().clear()
        with self._db_lock:
            self._touched.clear()
            self._pending_hits = self._pending_misses = 0
            if self._db is not None:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute("DELETE FROM results")
                    self._db.execute("DELETE FROM stats")
                    self._db.execute("COMMIT")
                    self._db.execute("VACUUM")
                except sqlite3.Error:
                    self._rollback()
                    log.warning("cannot clear the result cache %s", self.path, exc_info=True)

    def flush(self) -> None:
        """Write the counters and last-used times gathered since the last write."""
        with self._db_lock:
            if self._db is None:
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._flush_pending(self._db, time.time())
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._rollback()
                log.warning("cannot update the result cache %s", self.path, exc_info=True)

    def close(self) -> None:
        self.flush()
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def info(self) -> dict[str, Any]:
        """What the file holds: entries, bytes, the bound, and hits and misses of every process."""
        self.flush()
        entries = size = hits = misses = 0
        with self._db_lock:
            if self._db is not None:
                try:
                    entries, size = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM results").fetchone()
                    stats = dict(self._db.execute("SELECT name, value FROM stats").fetchall())
                    hits, misses = stats.get("hits", 0), stats.get("misses", 0)
                except sqlite3.Error:
                    log.warning("cannot read the result cache %s", self.path, exc_info=True)
        looked_up = hits + misses
        return {
            "path": str(self.path), "entries": entries, "bytes": size, "max_bytes": self.max_bytes,
            "hits": hits, "misses": misses, "hit_rate": hits / looked_up if looked_up else None,
        }

    # -- the file ----------------------------------------------------------------
    def _load(self, key: str) -> dict[str, Any] | None:
        with self._db_lock:
            if self._db is None:
                return None
            try:
                row = self._db.execute("SELECT outputs FROM results WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error as error:
                log.warning("cannot read the result cache %s", self.path, exc_info=True)
                self._recover(error)
                return None
        if row is None:
            return None
        try:
            outputs = decode_outputs(row[0], self.artifacts)
            if not isinstance(outputs, dict):
                raise ValueError("stored outputs are not an object")
        except (NodeloomError, OSError, ValueError, TypeError, KeyError):
            # a damaged row or a spilled artifact that is gone: the node runs again
            log.warning("cannot decode the cached result %s; the node will run again", key, exc_info=True)
            self._delete(key)
            return None
        self._touched.add(key)
        return outputs

    def _write(self, key: str, text: str, size: int) -> None:
        with self._db_lock:
            db = self._db
            if db is None:
                return
            now = time.time()
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT OR REPLACE INTO results (key, outputs, size, last_used) VALUES (?, ?, ?, ?)",
                           (key, text, size, now))
                self._flush_pending(db, now)
                self._evict(db)
                db.execute("COMMIT")
            except sqlite3.Error as error:
                self._rollback()
                log.warning("cannot write to the result cache %s", self.path, exc_info=True)
                self._recover(error)

    def _flush_pending(self, db: sqlite3.Connection, now: float) -> None:
        """Within a write transaction: the counters and last-used times gathered in memory."""
        touched, self._touched = self._touched, set()
        if touched:
            db.executemany("UPDATE results SET last_used = ? WHERE key = ?", [(now, key) for key in touched])
        for name, delta in (("hits", self._pending_hits), ("misses", self._pending_misses)):
            if delta:
                db.execute("INSERT INTO stats (name, value) VALUES (?, ?) "
                           "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", (name, delta))
        self._pending_hits = self._pending_misses = 0

    def _evict(self, db: sqlite3.Connection) -> None:
        """Within a write transaction: delete the least recently used rows until the total fits."""
        (total,) = db.execute("SELECT coalesce(sum(size), 0) FROM results").fetchone()
        while total > self.max_bytes:
            oldest = db.execute("SELECT key, size FROM results ORDER BY last_used, rowid LIMIT 64").fetchall()
            if not oldest:
                return
            doomed = []
            for key, size in oldest:
                if total <= self.max_bytes:
                    break
                doomed.append((key,))
                total -= size
            db.executemany("DELETE FROM results WHERE key = ?", doomed)

    def _delete(self, key: str) -> None:
        with self._db_lock:
            if self._db is None:
                return
            try:
                self._db.execute("DELETE FROM results WHERE key = ?", (key,))
            except sqlite3.Error:
                log.warning("cannot delete %s from the result cache %s", key, self.path, exc_info=True)

    def _recover(self, error: sqlite3.Error) -> None:
        """With the lock held: a file damaged while in use is set aside and started afresh."""
        if isinstance(error, sqlite3.OperationalError) or not isinstance(error, sqlite3.DatabaseError):
            return  # busy, locked, disk full: the file itself is fine
        if self._db is not None:
            self._db.close()
        self._set_aside()
        self._db = self._open()

    def _rollback(self) -> None:
        if self._db is not None and self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")


def _stored_size(text: str) -> int:
    """Bytes a row accounts for: its text, plus the spilled JSON document it points to."""
    size = len(text.encode())
    if text.startswith('{"$spilled"'):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            size += int(json.loads(text)["$spilled"]["size"])
    return size
