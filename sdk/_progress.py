"""The live progress display of `nodeloom run`: a bar on a terminal, plain lines in a log."""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from nodeloom.core.events import EventKind, RunEvent

_FINISHED = {
    EventKind.NODE_DONE: ("done", "green"),
    EventKind.NODE_CACHED: ("cached", "cyan"),
    EventKind.NODE_FAILED: ("failed", "red"),
    EventKind.NODE_SKIPPED: ("skipped", "yellow"),
    EventKind.NODE_CANCELLED: ("cancelled", "yellow"),
}
_PLAIN_PROGRESS_INTERVAL = 1.0


class RunDisplay:
    """An event callback that shows a run's progress on `console`."""

    def __init__(self, console: Console, node_types: dict[str, str], *, live: bool | None = None) -> None:
        self.console = console
        self.node_types = node_types
        self.total = len(node_types)
        self.finished = 0
        self.live = console.is_terminal if live is None else live
        self._lock = threading.Lock()
        self._node_tasks: dict[str, TaskID] = {}
        self._last_plain: dict[str, float] = {}
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._overall: TaskID | None = None

    def __enter__(self) -> RunDisplay:
        if self.live:
            self._progress.start()
            self._overall = self._progress.add_task("nodes", total=self.total)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self.live:
            self._progress.stop()

    def _label(self, node: str) -> str:
        return f"{node} ({self.node_types.get(node, '?')})"

    def __call__(self, event: RunEvent) -> None:
        with self._lock:
            if self.live:
                self._live(event)
            else:
                self._plain(event)

    def _live(self, event: RunEvent) -> None:
        node = event.node or ""
        progress = self._progress
        if event.kind is EventKind.NODE_STARTED and node not in self._node_tasks:
            self._node_tasks[node] = progress.add_task(f"  {self._label(node)}", total=None)
        elif event.kind is EventKind.NODE_PROGRESS and node in self._node_tasks:
            total = event.data.get("total")
            message = event.data.get("message")
            description = f"  {self._label(node)}" + (f" {message}" if message else "")
            progress.update(self._node_tasks[node], completed=event.data.get("done", 0), total=total,
                            description=description)
        elif event.kind is EventKind.NODE_RETRYING:
            error = event.data.get("error", {})
            progress.console.print(
                f"[yellow]retrying[/] {self._label(node)} in {event.data.get('delay', 0):.1f}s: {error.get('message')}"
            )
        elif event.kind in _FINISHED:
            word, colour = _FINISHED[event.kind]
            task = self._node_tasks.pop(node, None)
            if task is not None:
                progress.remove_task(task)
            if self._overall is not None:
                progress.advance(self._overall)
            if event.kind is EventKind.NODE_FAILED:
                error = event.data.get("error", {})
                progress.console.print(f"[{colour}]{word}[/] {self._label(node)}: {error.get('message')}")

    def _plain(self, event: RunEvent) -> None:
        node = event.node or ""
        if event.kind in _FINISHED:
            self.finished += 1
            word, _ = _FINISHED[event.kind]
            line = f"[{self.finished:>{len(str(self.total))}}/{self.total}] {word:<9} {self._label(node)}"
            duration = event.data.get("duration")
            if duration is not None:
                line += f" {duration:.2f}s"
            if event.kind is EventKind.NODE_FAILED:
                line += f": {event.data.get('error', {}).get('message')}"
            self.console.print(line, markup=False, highlight=False)
        elif event.kind is EventKind.NODE_PROGRESS:
            now = time.monotonic()
            if now - self._last_plain.get(node, 0.0) < _PLAIN_PROGRESS_INTERVAL:
                return
            self._last_plain[node] = now
            done, total = event.data.get("done"), event.data.get("total")
            amount = f"{done:g}/{total:g}" if total else f"{done:g}"
            message = event.data.get("message") or ""
            self.console.print(f"      ...       {self._label(node)} {amount} {message}".rstrip(), markup=False,
                               highlight=False)
        elif event.kind is EventKind.NODE_RETRYING:
            error = event.data.get("error", {})
            self.console.print(
                f"      retrying  {self._label(node)} in {event.data.get('delay', 0):.1f}s: {error.get('message')}",
                markup=False, highlight=False,
            )
