"""One background thread that stores queued items in batches: the API's database writes that
must not happen on the executor's threads (run events, durable node results)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("nodeloom.api")

Item = TypeVar("Item")


class BatchWriter(Generic[Item]):
    """Queues items from any thread; a writer thread hands them to `store` up to `max_batch` at a time.

    `store` runs on the writer thread only; an exception it raises is logged and the batch is
    dropped (the callers' data is a record of work done elsewhere, never the only copy of input).
    """

    def __init__(self, name: str, store: Callable[[list[Item]], None], max_batch: int = 500) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: queue.Queue[Item | None] = queue.Queue()
        self._busy = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Item) -> None:
        with self._idle:
            self._busy += 1
        self._queue.put(item)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued item is stored; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Store what is queued, then stop the thread."""
        self.flush(timeout)
        self._queue.put(None)
        self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            try:
                self._store(batch)
            except Exception:
                log.exception("%s: could not store %d items", self._thread.name, len(batch))
            with self._idle:
                self._busy -= len(batch)
                self._idle.notify_all()
            if stop:
                return
