"""The `nodeloom` command, run as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest
from processes import NODELOOM, nodeloom, plugin_env

REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "examples" / "hello" / "graph.json"


PLUGIN = '''
import time
from nodeloom.core import NodeContext, node

@node("slow.steps")
def steps(ctx: NodeContext, steps: int = 50, seconds: float = 0.1) -> int:
    """Counts slowly, reporting progress."""
    for step in range(steps):
        time.sleep(seconds)
        ctx.progress(step + 1, steps)
    return steps

@node("slow.fail")
def fail(message: str = "boom") -> int:
    """Always fails."""
    raise RuntimeError(message)
'''


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """An environment with a node pack installed as a distribution (entry point + module)."""
    return plugin_env(tmp_path, "slowpack", PLUGIN, "slow")


def write_graph(path: Path, nodes: dict, outputs: dict, inputs: dict | None = None) -> Path:  # type: ignore[type-arg]
    path.write_text(json.dumps({"format_version": 1, "inputs": inputs or {}, "nodes": nodes, "outputs": outputs}))
    return path


def test_run_writes_outputs_and_a_run_record(tmp_path: Path, cli_env: dict[str, str]) -> None:
    out = tmp_path / "out"
    done = nodeloom("run", str(HELLO), "--set", "name=loom", "--set", "excitement=2", "--out", str(out), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert (out / "greeting.txt").read_text() == "Hello, loom!!"
    assert (out / "both.txt").read_text() == "Hello, loom!! / HELLO, LOOM!!"
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "succeeded" and record["files"] == {"greeting": "greeting.txt", "both": "both.txt"}
    assert set(record["nodes"]) == {"greeting", "shout", "both"}
    assert "succeeded" in done.stdout and str(out / "both.txt") in done.stdout
    assert "[3/3] done" in done.stderr  # plain progress lines when not on a terminal


def test_run_reads_text_values_from_files(tmp_path: Path, cli_env: dict[str, str]) -> None:
    name = tmp_path / "name.txt"
    name.write_text("file friend")
    done = nodeloom("run", str(HELLO), "--set", f"name=@{name}", "--out", str(tmp_path / "o"), "-q", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "greeting.txt").read_text() == "Hello, file friend!"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--set", "excitement=9"], 1, "excitement: graph input 'excitement': 9 is above the maximum 5"),
        (["--set", "excitement=lots"], 2, "expected Int, got 'lots'"),
        (["--set", "nam=x"], 2, "the graph has no input 'nam'; inputs: excitement, name"),
        (["--set", "novalue"], 2, "--set takes name=value"),
    ],
)
def test_bad_input_values_are_clear_errors(tmp_path: Path, cli_env: dict[str, str], args: list[str], code: int,
                                           message: str) -> None:
    done = nodeloom("run", str(HELLO), *args, "--out", str(tmp_path / "o"), env=cli_env)
    assert done.returncode == code
    assert message in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr + done.stdout


def test_missing_graph_file_is_a_clear_error(tmp_path: Path, cli_env: dict[str, str]) -> None:
    done = nodeloom("run", str(tmp_path / "nope.json"), env=cli_env)
    assert done.returncode == 2 and "no graph file at" in done.stderr and "Traceback" not in done.stderr


def test_failed_run_exits_3_and_keeps_the_finished_outputs(tmp_path: Path, cli_env: dict[str, str]) -> None:
    graph = write_graph(
        tmp_path / "g.json",
        {"bad": {"type": "slow.fail", "inputs": {"message": "kaput"}},
         "good": {"type": "text.template", "inputs": {"template": "fine"}}},
        {"bad": {"node": "bad", "output": "result"}, "good": {"node": "good", "output": "text"}},
    )
    done = nodeloom("run", str(graph), "--out", str(tmp_path / "o"), env=cli_env)
    assert done.returncode == 3
    assert "RuntimeError: kaput" in done.stdout + done.stderr
    assert (tmp_path / "o" / "good.txt").read_text() == "fine"
    record = json.loads((tmp_path / "o" / "run.json").read_text())
    assert record["status"] == "failed" and record["errors"][0]["node"] == "bad"


def test_ctrl_c_cancels_the_run(tmp_path: Path, cli_env: dict[str, str]) -> None:
    graph = write_graph(tmp_path / "g.json", {"s": {"type": "slow.steps", "inputs": {"steps": 100}}},
                        {"n": {"node": "s", "output": "result"}})
    # as from a terminal: a job started in the background by a non-interactive shell (a CI script's
    # `cmd &`) inherits SIGINT ignored, and then Python, rightly, never raises KeyboardInterrupt
    process = subprocess.Popen([str(NODELOOM), "run", str(graph), "--out", str(tmp_path / "o")], env=cli_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # the first progress line: the node is running
        assert "slow.steps" in line, line
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "run cancelled" in err and "Traceback" not in err


def test_validate_lists_every_problem(tmp_path: Path, cli_env: dict[str, str]) -> None:
    graph = write_graph(
        tmp_path / "bad.json",
        {"a": {"type": "text.templat", "inputs": {}}, "b": {"type": "math.add", "inputs": {"a": "x"}}},
        {},
    )
    done = nodeloom("validate", str(graph), env=cli_env)
    assert done.returncode == 1
    for part in ("3 problems", "unknown_node_type", "did you mean 'text.template'", "type_mismatch",
                 "expected Float, received Text", "no_outputs"):
        assert part in done.stderr
    as_json = nodeloom("validate", str(graph), "--json", env=cli_env)
    assert sorted(i["code"] for i in json.loads(as_json.stdout)) == ["no_outputs", "type_mismatch", "unknown_node_type"]


def test_validate_accepts_a_valid_graph_and_reports_malformed_json(tmp_path: Path, cli_env: dict[str, str]) -> None:
    done = nodeloom("validate", str(HELLO), env=cli_env)
    assert done.returncode == 0 and "valid (3 nodes" in done.stdout
    broken = tmp_path / "broken.json"
    broken.write_text('{"nodes": ')
    done = nodeloom("validate", str(broken), env=cli_env)
    assert done.returncode == 1 and "malformed_json" in done.stderr and "Traceback" not in done.stderr


def test_nodes_lists_builtins_and_plugins(cli_env: dict[str, str]) -> None:
    done = nodeloom("nodes", env=cli_env)
    assert done.returncode == 0
    for name in ("text.template", "json.extract", "math.add", "slow.steps"):
        assert name in done.stdout
    found = nodeloom("nodes", "template", env=cli_env)
    assert "text.template" in found.stdout and "math.add" not in found.stdout


def test_nodes_json_is_the_catalog(cli_env: dict[str, str]) -> None:
    catalog = json.loads(nodeloom("nodes", "--json", env=cli_env).stdout)
    entries = {entry["type"]: entry for entry in catalog["nodes"]}
    assert "slow.steps" in entries and "text.join" in entries
    for entry in entries.values():
        jsonschema.Draft202012Validator.check_schema(entry["inputs"])


@pytest.mark.parametrize(
    ("command", "phrases"),
    [
        ([], ["run", "validate", "nodes", "Examples"]),
        (["run"], ["--set", "NAME=VALUE", "--out", "Exit codes", "@path", "--retry RUN_ID", "NODELOOM_API_URL"]),
        (["validate"], ["every problem", "Exit codes"]),
        (["nodes"], ["--json", "JSON Schema"]),
        (["worker"], ["--queues", "--concurrency", "GPU workers separate", "NODELOOM_BROKER_URL"]),
    ],
)
def test_help_answers_the_question(cli_env: dict[str, str], command: list[str], phrases: list[str]) -> None:
    done = nodeloom(*command, "--help", env=cli_env)
    assert done.returncode == 0
    for phrase in phrases:
        assert phrase in done.stdout


def test_progress_is_shown_while_a_node_runs(tmp_path: Path, cli_env: dict[str, str]) -> None:
    graph = write_graph(tmp_path / "g.json", {"s": {"type": "slow.steps", "inputs": {"steps": 12, "seconds": 0.1}}},
                        {"n": {"node": "s", "output": "result"}})
    started = time.monotonic()
    done = nodeloom("run", str(graph), "--out", str(tmp_path / "o"), env=cli_env)
    assert done.returncode == 0
    assert time.monotonic() - started > 1.0
    assert "s (slow.steps)" in done.stderr and "/12" in done.stderr


def test_live_progress_display_on_a_terminal(tmp_path: Path, cli_env: dict[str, str]) -> None:
    import pty

    graph = write_graph(tmp_path / "g.json", {"s": {"type": "slow.steps", "inputs": {"steps": 8, "seconds": 0.1}}},
                        {"n": {"node": "s", "output": "result"}})
    main, secondary = pty.openpty()
    env = {**cli_env, "TERM": "xterm", "COLUMNS": "120"}
    process = subprocess.Popen([str(NODELOOM), "run", str(graph), "--out", str(tmp_path / "o")], env=env,
                               stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # the terminal closed: the process ended
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=30)
    os.close(main)
    screen = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0
    assert "nodes" in screen and "1/1" in screen  # the overall bar
    assert "s (slow.steps)" in screen  # the running node's own bar
    assert "\x1b[" in screen  # drawn with terminal control sequences, not plain lines
    assert "[1/1] done" not in screen


def test_a_json_input_value_is_checked_against_the_inputs_schema(tmp_path: Path, cli_env: dict[str, str]) -> None:
    schema = {"type": "object", "required": ["audience"]}
    pick = {"type": "json.extract", "inputs": {"data": {"input": "brief"}, "path": "audience"}}
    graph = write_graph(tmp_path / "g.json", {"pick": pick}, {"audience": {"node": "pick", "output": "value"}},
                        {"brief": {"type": "Json", "schema": schema}})
    done = nodeloom("run", str(graph), "--set", "brief=42", "--out", str(tmp_path / "o"), env=cli_env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "brief: graph input 'brief': does not match the Json[schema] schema: 42 is not of type 'object'" in " ".join(
        done.stderr.split())
    done = nodeloom("run", str(graph), "--set", 'brief={"audience": "tea lovers"}', "--out", str(tmp_path / "o"),
                    env=cli_env)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "o" / "run.json").read_text())["outputs"] == {"audience": "tea lovers"}
