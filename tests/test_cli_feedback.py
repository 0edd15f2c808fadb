"""What the `nodeloom` command tells its user, run as a real process: searches of several
words, searches without hits, an unwritable output folder, webhook payloads with artifacts."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from processes import nodeloom, plugin_env

#: a node pack whose node leaves a marker file, so a test can tell whether any node ran
MARKER_PACK = '''
from pathlib import Path
from nodeloom.core import node

@node("marker.touch")
def touch(path: str) -> str:
    """Creates the file at path."""
    Path(path).touch()
    return path
'''


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """An environment with a node pack installed as a distribution (entry point + module)."""
    return plugin_env(tmp_path, "markerpack", MARKER_PACK, "marker")


def write_graph(path: Path, nodes: dict[str, Any], outputs: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"format_version": 1, "inputs": {}, "nodes": nodes, "outputs": outputs}))
    return path


# -- nodeloom nodes QUERY... ---------------------------------------------------------


def test_nodes_takes_a_query_of_several_words(cli_env: dict[str, str]) -> None:
    done = nodeloom("nodes", "text", "template", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "text.template" in done.stdout and "unexpected extra argument" not in done.stderr


def test_nodes_without_a_match_says_so_and_exits_1(cli_env: dict[str, str]) -> None:
    done = nodeloom("nodes", "xyzzy", "plugh", env=cli_env)
    assert done.returncode == 1
    assert "no node types match 'xyzzy plugh'" in done.stderr
    assert "type" not in done.stdout  # no empty table


def test_nodes_without_a_match_suggests_the_nearest_type_names(cli_env: dict[str, str]) -> None:
    done = nodeloom("nodes", "tmeplate", env=cli_env)
    assert done.returncode == 1
    assert "did you mean: text.template" in done.stderr


def test_nodes_help_names_the_words_and_the_exit_code(cli_env: dict[str, str]) -> None:
    done = nodeloom("nodes", "--help", env=cli_env)
    assert "[QUERY]..." in done.stdout and "Exits 1 when no node type matches" in done.stdout


# -- nodeloom run --out ----------------------------------------------------------------


@pytest.mark.parametrize("make_out", [lambda tmp: Path("/proc/nodeloom-out"), lambda tmp: tmp / "a-file" / "out"])
def test_run_refuses_an_unwritable_output_folder_before_any_node_runs(
    tmp_path: Path, cli_env: dict[str, str], make_out: Any
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    marker = tmp_path / "ran"
    graph = write_graph(tmp_path / "g.json", {"t": {"type": "marker.touch", "inputs": {"path": str(marker)}}},
                        {"done": {"node": "t", "output": "result"}})
    out = make_out(tmp_path)
    done = nodeloom("run", str(graph), "--out", str(out), env=cli_env)
    assert done.returncode == 2
    assert f"cannot write to the output folder {out}" in done.stderr
    assert not marker.exists()


def test_run_creates_a_missing_output_folder(tmp_path: Path, cli_env: dict[str, str]) -> None:
    marker = tmp_path / "ran"
    graph = write_graph(tmp_path / "g.json", {"t": {"type": "marker.touch", "inputs": {"path": str(marker)}}},
                        {"done": {"node": "t", "output": "result"}})
    out = tmp_path / "new" / "nested"
    done = nodeloom("run", str(graph), "--out", str(out), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert marker.exists() and (out / "run.json").exists()


# -- webhook.post payloads with artifacts ----------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Any]]]:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body it is sent."""
    bodies: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()
    server.server_close()


def test_a_local_run_gives_the_webhook_a_file_path_for_each_artifact(
    tmp_path: Path, cli_env: dict[str, str], receiver: tuple[str, list[Any]]
) -> None:
    url, bodies = receiver
    graph = write_graph(tmp_path / "g.json", {
        "card": {"type": "image.title_card", "inputs": {"text": "done", "width": 32, "height": 32}},
        "payload": {"type": "json.object",
                    "inputs": {"video": {"node": "card", "output": "image"}, "event": "video.ready"}},
        "hook": {"type": "webhook.post", "inputs": {"url": url, "payload": {"node": "payload", "output": "data"}}},
    }, {"status": {"node": "hook", "output": "status"}})
    done = nodeloom("run", str(graph), "--allow-private-network", "--out", str(tmp_path / "o"), env=cli_env)
    assert done.returncode == 0, done.stdout + done.stderr
    (body,) = bodies
    video = body["video"]
    digest = video["$artifact"].removeprefix("sha256:")
    content = Path(video["path"]).read_bytes()
    assert hashlib.sha256(content).hexdigest() == digest and content.startswith(b"\x89PNG")
    assert body["event"] == "video.ready"
