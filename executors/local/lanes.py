"""Worker lanes and the timer thread of the local executor.

A lane is a queue with its own worker threads: one lane for `cpu` nodes, one for `io`
nodes, and one lane of a single thread per GPU device, so two diffusion nodes never share
a device at once. Threads start on demand. A worker that finishes a node continues with a
ready successor of the same lane itself, so a chain runs without thread hand-offs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

#: a queue that has not moved for this long gets another worker
STALL_SECONDS = 0.005


class LaneTask(Protocol):
    def execute(self, node_id: str, lane: Lane) -> str | None:
        """Run one node; return a ready node of the same lane to continue with, or None."""
        ...


class _Batch:
    __slots__ = ("node_ids", "run", "taken")

    def __init__(self, run: LaneTask, node_ids: list[str]) -> None:
        self.run = run
        self.node_ids = node_ids
        self.taken = 0


class Lane:
    """A queue of ready nodes and up to `size` worker threads.

    One worker drains the queue; it also runs a ready successor of the node it just
    finished without queueing it, so a chain runs on one thread with no hand-offs.
    Extra workers join only when the queue stops moving for `STALL_SECONDS` (a node is
    slow, so running others beside it pays off), and each such grant admits one node:
    for nodes of a few microseconds, a second thread would cost more in lock and GIL
    hand-offs than it gains.
    """

    def __init__(
        self,
        name: str,
        size: int,
        timers: Timers,
        *,
        device: str | None = None,
        replace_stuck: bool = True,
    ) -> None:
        if size < 1:
            raise ValueError(f"lane {name!r} needs at least one worker")
        self.name = name
        self.size = size
        self.device = device
        #: start a spare worker while one is stuck in a timed-out or cancelled node
        self.replace_stuck = replace_stuck
        self._timers = timers
        # batches of ready nodes of one run; a fan-out of thousands of nodes is one entry
        self._tasks: deque[_Batch] = deque()
        self._queued = 0
        self._cond = threading.Condition(threading.Lock())
        self._threads = 0
        self._idle = 0
        self._active = 0
        self._grants = 0
        self._spares = 0
        self._pops = 0
        self._pops_at_check = 0
        self._check_pending = False
        self._closed = False
        self._names = itertools.count(1)

    @property
    def load(self) -> int:
        """Queued plus running nodes."""
        return self._queued + self._active

    def start(self) -> None:
        """Start one worker now, so the first node does not wait for a thread to start."""
        with self._cond:
            if self._threads == 0:
                self._spawn()

    def push(self, run: LaneTask, node_ids: list[str]) -> None:
        """Queue ready nodes of one run."""
        with self._cond:
            self._enqueue(run, node_ids)
            if self._active == 0:
                self._wake()

    def _enqueue(self, run: LaneTask, node_ids: list[str]) -> None:
        """Queue nodes and make sure the queue is watched for stalls (the caller holds the lock)."""
        self._tasks.append(_Batch(run, node_ids))
        self._queued += len(node_ids)
        if not self._check_pending and self.size + self._spares > 1:
            self._check_pending = True
            self._pops_at_check = self._pops
            self._timers.call_at(time.monotonic() + STALL_SECONDS, self._check_stall)

    def _wake(self) -> None:
        if self._idle:
            self._cond.notify()
        elif self._threads < self.size + self._spares:
            self._spawn()

    def _check_stall(self) -> None:
        with self._cond:
            self._check_pending = False
            if not self._tasks or self._closed:
                return
            if self._pops == self._pops_at_check and self._active < self.size + self._spares:
                self._grants += 1  # nothing left the queue for a whole interval: admit one more
                self._wake()
            self._check_pending = True
            self._pops_at_check = self._pops
        self._timers.call_at(time.monotonic() + STALL_SECONDS, self._check_stall)

    def add_spare(self) -> bool:
        """A worker is stuck in an abandoned node: allow one more thread until it returns."""
        if not self.replace_stuck:
            return False
        with self._cond:
            self._spares += 1
            if self._tasks:
                self._grants += 1
                self._wake()
        return True

    def release_spare(self) -> None:
        with self._cond:
            self._spares = max(0, self._spares - 1)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _spawn(self) -> None:
        self._threads += 1
        thread = threading.Thread(
            target=self._work, name=f"nodeloom-{self.name}-{next(self._names)}", daemon=True
        )
        thread.start()

    def _may_take(self) -> bool:
        return bool(self._tasks) and (self._active == 0 or self._grants > 0)

    def _take(self) -> tuple[LaneTask, str]:
        """The next queued node (the caller holds the lock and has counted itself active)."""
        self._pops += 1
        batch = self._tasks[0]
        taken = batch.run, batch.node_ids[batch.taken]
        batch.taken += 1
        if batch.taken == len(batch.node_ids):
            self._tasks.popleft()
        self._queued -= 1
        if not self._tasks:
            self._grants = 0
        return taken

    def _run_chain(self, run: LaneTask, node_id: str) -> None:
        try:
            current: str | None = node_id
            while current is not None:
                current = run.execute(current, self)
        except Exception:  # a bug in the runtime itself; keep the worker alive
            log.exception("lane %s: unexpected error", self.name)

    def help(self, run: LaneTask, node_ids: list[str], done: threading.Event) -> None:
        """Run ready nodes of `run` on the calling thread, as one more worker of this lane.

        Used by a caller that would otherwise only wait for its run: it spares the two
        thread hand-offs a run costs. The caller keeps taking its run's queued nodes until the
        run is done or none is at the head of the queue, then leaves the rest to the lane's
        own workers.
        """
        with self._cond:
            self._active += 1
            self._enqueue(run, node_ids)
        cond = self._cond
        try:
            while not done.is_set():
                # acquire/release rather than `with`: a Condition's __enter__ and __exit__ are
                # Python calls, and this runs once per queued node (a fan-out of thousands)
                cond.acquire()
                try:
                    if not self._tasks or self._tasks[0].run is not run:
                        break  # other runs' nodes are for the lane's own workers
                    task, node_id = self._take()
                finally:
                    cond.release()
                self._run_chain(task, node_id)
        finally:
            with self._cond:
                self._active -= 1
                if self._tasks and self._active == 0:
                    self._wake()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._may_take() and not self._closed:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                if self._closed and not self._tasks:
                    self._threads -= 1
                    return
                if self._active > 0:
                    self._grants -= 1
                self._active += 1
                run, node_id = self._take()
            self._run_chain(run, node_id)
            with self._cond:
                self._active -= 1
                if self._threads > self.size + self._spares:
                    self._threads -= 1
                    return


class Timers:
    """One thread that calls functions at given times (retry back-offs, node timeouts)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition(threading.Lock())
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_at(self, when: float, action: Callable[[], None]) -> None:
        """Call `action()` at `when` (a `time.monotonic()` value), on the timer thread."""
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._counter), action))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="nodeloom-timers", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                if self._closed:
                    return
                _, _, action = heapq.heappop(self._heap)
            try:
                action()
            except Exception:
                log.exception("timer action failed")


class AsyncLoop:
    """An event loop on its own thread, for `async def` nodes."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="nodeloom-async", daemon=True).start()
                self._loop = loop
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def close(self) -> None:
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop = None
