"""The worker side of the process pool: a `LocalExecutor` in a child process, driven over a pipe.

The parent sends `("run", run_id, graph_json, inputs, config_json, use_cache)` and
`("cancel", run_id)`; the worker answers with every event of the run
(`("event", run_id, event, outputs)`, `outputs` being the graph outputs a finished node
produced), then `("finished", run_id, event, result)`. Result-cache lookups and stores go to
the parent (`("cache_get", request, key)` / `("cache_put", key, outputs)`), so one cache serves
every worker. The main thread only reads the pipe; runs start on their own threads, because
starting one may ask the parent for cached results and wait for the answer on this same pipe.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import signal
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from nodeloom.core.artifacts import open_artifact_store
from nodeloom.core.cache import ResultCache
from nodeloom.core.context import RunConfig
from nodeloom.core.events import EventKind, RunEvent, RunResult
from nodeloom.core.graph import Graph
from nodeloom.core.values import value_to_json

log = logging.getLogger(__name__)

#: how long a worker waits for the parent's answer to a cache lookup before treating it as a miss
CACHE_ANSWER_SECONDS = 30.0


class ParentChannel:
    """The worker's end of the pipe: sends from any thread, and cache lookups that wait for their answer."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._send_lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._waiting: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> bool:
        """Send a message; False (nothing sent) when it cannot be pickled, or the parent is gone."""
        try:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a value with no pickled form (a model handle, a lock): the caller decides
            return False
        try:
            with self._send_lock:
                self.connection.send_bytes(data)
        except OSError:
            return False
        return True

    def ask_cache(self, key: str) -> dict[str, Any] | None:
        number = next(self._numbers)
        answered = threading.Event()
        slot: list[Any] = []
        with self._lock:
            self._waiting[number] = (answered, slot)
        try:
            if not self.send(("cache_get", number, key)) or not answered.wait(CACHE_ANSWER_SECONDS):
                return None
            return slot[0] if slot else None
        finally:
            with self._lock:
                self._waiting.pop(number, None)

    def answer(self, number: int, outputs: dict[str, Any] | None) -> None:
        with self._lock:
            waiting = self._waiting.get(number)
        if waiting is not None:
            waiting[1].append(outputs)
            waiting[0].set()


class ParentCache(ResultCache):
    """The result cache of a worker: the parent's cache, asked over the pipe.

    Outputs that cannot travel to the parent (no pickled form: a loaded model) are kept here,
    in this worker's memory, as the local executor would keep them.
    """

    def __init__(self, channel: ParentChannel, max_entries: int = 1000) -> None:
        super().__init__(max_entries)
        self.channel = channel

    def get(self, key: str) -> dict[str, Any] | None:
        found = super().get(key)
        return found if found is not None else self.channel.ask_cache(key)

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        if not self.channel.send(("cache_put", key, outputs)):
            super().put(key, outputs)


def _sendable_result(result: RunResult) -> RunResult:
    """`result` with outputs that cannot be pickled replaced by their JSON form (or repr)."""
    try:
        pickle.dumps(result.outputs)
        return result
    except Exception:
        result.outputs = value_to_json(result.outputs, describe_unknown=True)
        return result


class WorkerRuns:
    """The runs of one worker process, by the parent's run id."""

    def __init__(self, channel: ParentChannel, node_modules: Sequence[str], artifacts: str,
                 cpu_workers: int | None) -> None:
        from nodeloom.executors.local import LocalExecutor
        from nodeloom.node_registry import registry_with

        self.channel = channel
        self.executor = LocalExecutor(registry_with(node_modules), artifacts=open_artifact_store(artifacts),
                                      cache=ParentCache(channel), cpu_workers=cpu_workers, keep_runs=20)
        self._local_ids: dict[str, str] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def start(self, run_id: str, graph_json: dict[str, Any], inputs: dict[str, Any], config_json: dict[str, Any],
              use_cache: bool) -> None:
        threading.Thread(target=self._run, args=(run_id, graph_json, inputs, config_json, use_cache),
                         name=f"nodeloom-pool-start-{run_id[:8]}", daemon=True).start()

    def _run(self, run_id: str, graph_json: dict[str, Any], inputs: dict[str, Any], config_json: dict[str, Any],
             use_cache: bool) -> None:
        graph = Graph.from_json(graph_json)
        # the graph outputs each node feeds: sent with its node.done, so a run whose worker dies keeps them
        feeds: dict[str, list[str]] = {}
        for name, link in graph.outputs.items():
            feeds.setdefault(link.node, []).append(name)
        executor = self.executor

        def forward(event: RunEvent) -> None:
            if event.kind is EventKind.RUN_FINISHED:
                result = executor.status(event.run_id)
                if not self.channel.send(("finished", run_id, event, _sendable_result(result))):
                    log.error("could not send the result of run %s", run_id)
                return
            outputs: dict[str, Any] | None = None
            if event.node in feeds and event.kind in (EventKind.NODE_DONE, EventKind.NODE_CACHED):
                produced = executor.status(event.run_id).outputs
                outputs = {name: produced[name] for name in feeds[event.node] if name in produced}
            if not self.channel.send(("event", run_id, event, outputs)):
                self.channel.send(("event", run_id, event, None))

        try:
            handle = executor.submit(graph, inputs, config=RunConfig.from_json(config_json), on_event=forward,
                                     use_cache=use_cache)
        except Exception as error:  # the parent validated the run: this is a worker fault, reported as such
            log.exception("run %s could not start in the worker", run_id)
            self.channel.send(("refused", run_id, f"{type(error).__name__}: {error}"))
            return
        with self._lock:
            self._local_ids[run_id] = handle.run_id
            cancel = run_id in self._cancelled
        if cancel:
            executor.cancel(handle.run_id)

    def cancel(self, run_id: str) -> None:
        with self._lock:
            local = self._local_ids.get(run_id)
            if local is None:
                self._cancelled.add(run_id)
                return
        self.executor.cancel(local)


def serve(connection: Connection, node_modules: Sequence[str], artifacts: str, cpu_workers: int | None) -> None:
    """The worker process's main function: read the parent's messages until it says stop or goes away."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when workers stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = ParentChannel(connection)
    runs = WorkerRuns(channel, node_modules, artifacts, cpu_workers)
    channel.send(("ready", os.getpid()))
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            break  # the parent is gone: so are we
        kind = message[0]
        if kind == "run":
            runs.start(*message[1:])
        elif kind == "cancel":
            runs.cancel(message[1])
        elif kind == "cache":
            channel.answer(message[1], message[2])
        elif kind == "stop":
            break
    # os._exit: node threads that ignore cancellation must not keep the process alive
    os._exit(0)
