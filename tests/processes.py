"""`nodeloom` commands and `nodeloom serve` as child processes, for the CLI and API suites.

tests/ is on the import path: `from processes import ApiServer`. The server imports the
test nodes of conftest.py (`--node-module conftest`), so this folder is on its PYTHONPATH.
`plugin_env` installs a node pack as a distribution with an entry point, the way a user would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from netutil import free_port, wait_for_server

TESTS = Path(__file__).resolve().parent
NODELOOM = Path(sys.executable).with_name("nodeloom")


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `nodeloom` child process: this folder importable, its home in `home`."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "NODELOOM_HOME": str(home), "XDG_DATA_HOME": str(home / "data"), **extra}


def plugin_env(folder: Path, module: str, source: str, entry: str) -> dict[str, str]:
    """An environment in which the module `module` (its code: `source`) is an installed node pack
    (a distribution with the `nodeloom.nodes` entry point `entry`), with plain, wide, uncoloured output."""
    site = folder / "site"
    site.mkdir()
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[nodeloom.nodes]\n{entry} = {module}\n")
    env = dict(os.environ, PYTHONPATH=str(site), NODELOOM_HOME=str(folder / "home"), NO_COLOR="1", COLUMNS="200")
    env.pop("FORCE_COLOR", None)
    return env


def nodeloom(*args: str, env: Mapping[str, str], cwd: Path | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`nodeloom ARGS...` run to its end: exit code, stdout and stderr as text."""
    return subprocess.run([str(NODELOOM), *args], capture_output=True, text=True, env=dict(env), cwd=cwd,
                          timeout=timeout)


def spawn(args: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`nodeloom ARGS...` in a child process, its output appended to `log`."""
    return subprocess.Popen([sys.executable, "-m", "nodeloom.cli", *args], env=dict(env), stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)


def create_key(db_url: str, env: Mapping[str, str], project: str, scopes: str) -> str:
    """`nodeloom keys create`: the key, printed alone on stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "nodeloom.cli", "keys", "create", "--project", project, "--scopes", scopes,
         "--db-url", db_url],
        env=dict(env), capture_output=True, text=True, timeout=120, check=True,
    )
    key = done.stdout.strip()
    assert key.startswith("nl_") and "\n" not in key
    assert "shown only now" in done.stderr
    return key


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """Terminate a child process, killing it when it does not exit within `timeout` s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)


class ApiServer:
    """`nodeloom serve` in a child process; `kill` stops it the hard way, as a crash would."""

    def __init__(self, db_url: str, home: Path, *, options: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 log: str = "server.log") -> None:
        self.db_url = db_url
        self.home = home
        self.options = list(options)
        self.env = dict(env) if env is not None else cli_env(home)
        self.log = home / log
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = spawn(["serve", "--port", str(port), "--db-url", self.db_url, "--node-module", "conftest",
                              "--log-level", "warning", *self.options], self.env, self.log)
        wait_for_server(self.process, f"{self.url}/healthz", 90, "nodeloom serve", log=self.log)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        stop(self.process)

    @contextmanager
    def running(self) -> Iterator[ApiServer]:
        """Started on entry, stopped on exit (a test module's server fixture)."""
        self.start()
        try:
            yield self
        finally:
            self.stop()
