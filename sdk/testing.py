"""Test helpers for nodeloom users and for nodeloom's own suite and benchmarks.

`nodeloom.testing` starts a Redis server and Celery workers on this machine as child
processes, to test a node pack on the distributed executor (or benchmark it, or try it
out) without a deployment; `wait_until` polls a condition and `free_port` finds a loopback
port. It needs the `celery` extra (`pip install 'nodeloom[celery]'`) and `redis-server` on
the PATH. Nothing in the nodeloom package imports it: it is scaffolding for tests.

>>> with RedisServer(folder) as server, WorkerFleet(CeleryConfig(broker_url=server.url)) as fleet:
...     fleet.start("cpu", "nodeloom.cpu,nodeloom.io")
...     ...

Every process is started in its own process group, so stopping (or killing) a worker also
stops its pool processes. A production fleet runs `nodeloom worker` under a supervisor
instead (see docs/workers.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import redis

from nodeloom.executors.celery.app import CeleryConfig


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every 50 ms; `TimeoutError` naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class RedisServer:
    """A `redis-server` on 127.0.0.1 keeping its files in `folder`; `appendonly` makes it durable
    (every write fsynced before the reply), so it can be killed and started again without loss."""

    def __init__(self, folder: Path, port: int | None = None, appendonly: bool = False) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server (again, on the same port and folder) and wait until it answers."""
        self.folder.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        client = redis.Redis(port=self.port)
        try:
            wait_until(lambda: self._answers(client), 15, f"redis-server on port {self.port}")
        finally:
            client.close()
        return self

    def kill(self) -> None:
        """SIGKILL the server (no shutdown save: only what append-only persistence wrote survives)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def _answers(self, client: redis.Redis) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with status {self.process.returncode}")
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.ResponseError):  # ResponseError: still loading its files
            return False

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WorkerFleet:
    """`celery worker` processes of the nodeloom app for one configuration, each logging to a file."""

    def __init__(self, config: CeleryConfig, logs: Path, python_path: Sequence[Path] = (),
                 env: Mapping[str, str] | None = None) -> None:
        self.config = config
        path = [str(folder) for folder in python_path]
        if os.environ.get("PYTHONPATH"):
            path.append(os.environ["PYTHONPATH"])
        self.env = {**os.environ, **config.to_env(), **(env or {}), "PYTHONPATH": os.pathsep.join(path)}
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, queues: str, concurrency: int = 2, pool: str = "prefork",
              include: Sequence[str] = (), env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a worker named `name` on `queues` (comma-separated) and wait until it is ready."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "nodeloom.executors.celery.app", "worker",
            "-n", f"{name}@%h", "-Q", queues, "-c", str(concurrency), "-P", pool,
            "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        for module in include:
            command += ["-I", module]
        with log.open("wb") as out:
            process = subprocess.Popen(command, env={**self.env, **(env or {})}, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(process)
        wait_until(lambda: b" ready." in log.read_bytes() or process.poll() is not None, 90, f"worker {name}")
        if process.poll() is not None:
            raise RuntimeError(f"worker {name} exited:\n{log.read_text()}")
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL a worker and its pool processes at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """Stop a worker (warm shutdown, then SIGKILL after 10 s) and whatever is left of its group."""
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill(process)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for process in self.started:
            self.stop(process)

    def __enter__(self) -> WorkerFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
