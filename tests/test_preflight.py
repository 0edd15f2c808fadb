"""Preflight: a run that would break on the machine or its policy fails before any node runs.

Every graph here puts a node that leaves a marker file (`marker.mark`) upstream of the one
that cannot run, so "no node ran" is observed twice: no event of the run, and no marker. The
issue asks for a failure "in under a second"; the runs measure it (preflight makes no DNS
query and starts no program).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from marker_nodes import MODULE, installed_pack_env, markers

import nodeloom
from nodeloom.core import Graph, RunEvent
from nodeloom.core.context import RunConfig
from nodeloom.core.errors import GraphValidationError
from nodeloom.core.preflight import out_dir_problem, preflight
from nodeloom.core.spec import InputProblem, NodePreflight, node
from nodeloom.executors.local import LocalExecutor
from nodeloom.node_registry import NodeRegistry, builtin_registry
from nodeloom.node_registry.http.addresses import literal_address

NODELOOM = Path(sys.executable).with_name("nodeloom")


def _needs_a_licence(use: NodePreflight) -> list[InputProblem]:
    if use.inputs.get("licence") == "missing":
        return [InputProblem("licence_missing", "no licence for this run", port="licence", hint="buy one")]
    return []


@node("pack.licensed", preflight=_needs_a_licence)
def licensed(text: str, licence: str = "ok") -> str:
    """A third-party node that declares its own preflight check."""
    return text


def _broken_hook(use: NodePreflight) -> list[InputProblem]:
    raise RuntimeError("the hook itself is broken")


@node("pack.broken_check", preflight=_broken_hook)
def broken_check(text: str) -> str:
    return text


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    found = builtin_registry()
    found.register_module(MODULE)
    found.register(licensed)
    found.register(broken_check)
    return found


@pytest.fixture
def executor(registry: NodeRegistry, tmp_path: Path) -> Iterator[LocalExecutor]:
    with LocalExecutor(registry, artifacts=tmp_path / "artifacts") as running:
        yield running


def marked(name: str, folder: Path) -> Graph:
    """A graph whose root `first` leaves a marker when it runs: a root starts at once, so no marker
    means no node ran."""
    g = Graph(name)
    g.output("marked", g.add("marker.mark", "first", folder=str(folder), label="first", value=1.0)["value"])
    return g


def refused_run(executor: LocalExecutor, registry: NodeRegistry, graph: Graph, folder: Path,
                inputs: Mapping[str, Any] | None = None, config: RunConfig | None = None) -> list[dict[str, Any]]:
    """Run through `nodeloom.run`; assert it fails before any node, in under a second; the issues."""
    events: list[RunEvent] = []
    started = time.monotonic()
    with pytest.raises(GraphValidationError) as refused:
        nodeloom.run(graph, inputs, executor=executor, config=config, on_event=events.append)
    elapsed = time.monotonic() - started
    assert events == [] and markers(folder, "first") == []
    assert elapsed < 1.0, f"preflight took {elapsed:.2f} s"
    return [issue.to_dict() for issue in refused.value.issues]


def codes(issues: list[dict[str, Any]]) -> list[tuple[str, str | None, str | None]]:
    return [(i["code"], i["node"], i["port"]) for i in issues]


# -- control.map --------------------------------------------------------------------------


def map_graph(folder: Path, **map_inputs: Any) -> Graph:
    g = marked("mapped", folder)
    g.output("results", g.add("control.map", "each", **map_inputs)["results"])
    return g


def test_a_map_of_an_unknown_node_type_fails_before_any_node(
    executor: LocalExecutor, registry: NodeRegistry, tmp_path: Path
) -> None:
    graph = map_graph(tmp_path, node="text.templat", items=["a"], item_input="name")
    issues = refused_run(executor, registry, graph, tmp_path)
    assert codes(issues) == [("unknown_node_type", "each", "node")]
    assert "did you mean 'text.template'" in issues[0]["hint"]


def test_map_items_and_constants_that_do_not_fit_fail_before_any_node(
    executor: LocalExecutor, registry: NodeRegistry, tmp_path: Path
) -> None:
    graph = map_graph(tmp_path, node="marker.mark", items=[1, "two", 3], item_input="value",
                      inputs={"folder": str(tmp_path), "label": "x", "seconds": "slow"})
    issues = refused_run(executor, registry, graph, tmp_path)
    assert codes(issues) == [("type_mismatch", "each", "inputs"), ("type_mismatch", "each", "items")]
    assert "`inputs` value 'seconds' does not fit input 'seconds' of marker.mark" in issues[0]["message"]
    assert "item 1 does not fit input 'value' of marker.mark" in issues[1]["message"]


def test_map_items_from_a_graph_input_are_checked_with_the_given_values(
    executor: LocalExecutor, registry: NodeRegistry, tmp_path: Path
) -> None:
    g = marked("mapped input", tmp_path)
    items = g.input("items", "List[Any]")
    first = g.add("marker.mark", "second", folder=str(tmp_path), label="first", value=0.0)
    mapped = g.add("control.map", "each", node="marker.mark", items=items, item_input="value",
                   inputs={"folder": str(tmp_path), "label": "x"}, seconds=first["value"])
    g.output("out", mapped["results"])
    issues = refused_run(executor, registry, g, tmp_path, {"items": [1, "x"]})
    assert codes(issues) == [("type_mismatch", "each", "items")]
    # a linked constant (seconds) is not "missing", and good items pass
    assert preflight(g, registry, {"items": [1, 2]}) == []


# -- programs --------------------------------------------------------------------------


def test_speech_without_espeak_fails_before_any_node(
    executor: LocalExecutor, registry: NodeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_ESPEAK", str(tmp_path / "no-espeak-here"))
    graph = speak_graph(tmp_path)
    issues = refused_run(executor, registry, graph, tmp_path)
    assert codes(issues) == [("program_missing", "speak", None)]
    assert "NODELOOM_ESPEAK" in issues[0]["message"] and "apt-get install espeak-ng" in issues[0]["message"]


def speak_graph(folder: Path) -> Graph:
    g = marked("speech", folder)
    g.output("audio", g.add("audio.speak", "speak", text="hello")["audio"])
    return g


def test_video_without_ffmpeg_fails_before_any_node(
    executor: LocalExecutor, registry: NodeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "no-ffmpeg-here"))
    g = marked("video", tmp_path)
    cards = g.add("control.map", "cards", node="image.title_card", items=["hello"], item_input="text")
    g.output("video", g.add("video.slideshow", "video", images=cards["results"])["video"])
    issues = refused_run(executor, registry, g, tmp_path)
    assert codes(issues) == [("program_missing", "video", None)]
    assert "no-ffmpeg-here" in issues[0]["message"]


# -- network destinations --------------------------------------------------------------------


def webhook_graph(folder: Path, url: Any) -> Graph:
    g = marked("hook", folder)
    g.output("status", g.add("webhook.post", "notify", url=url, payload={"done": True})["status"])
    return g


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://[::1]/hook",
                                 "http://2130706433/hook", "https://10.1.2.3/hook", "http://169.254.169.254/"])
def test_a_webhook_to_a_private_address_fails_before_any_node(
    executor: LocalExecutor, registry: NodeRegistry, tmp_path: Path, url: str
) -> None:
    issues = refused_run(executor, registry, webhook_graph(tmp_path, url), tmp_path)
    assert codes(issues) == [("destination_refused", "notify", "url")]
    assert "--allow-private-network" in issues[0]["hint"]


def test_the_allow_flag_lets_a_private_destination_through(registry: NodeRegistry, tmp_path: Path) -> None:
    graph = webhook_graph(tmp_path, "http://127.0.0.1:9/hook")
    assert preflight(graph, registry, config=RunConfig(allow_private_network=True)) == []


def test_a_url_from_a_graph_input_is_checked_with_its_value(
    executor: LocalExecutor, registry: NodeRegistry, tmp_path: Path
) -> None:
    g = marked("fetch", tmp_path)
    g.output("status", g.add("http.request", "fetch", url=g.input("url", "Text"))["status"])
    issues = refused_run(executor, registry, g, tmp_path, {"url": "http://192.168.1.20/api"})
    assert codes(issues) == [("destination_refused", "fetch", "url")]
    assert preflight(g, registry, {"url": "https://93.184.216.34/api"}) == []


def test_host_names_are_not_looked_up_before_the_run(registry: NodeRegistry, tmp_path: Path) -> None:
    # the run checks every address a name resolves to when it connects; preflight asks no DNS
    assert literal_address("example.invalid") is None
    assert preflight(webhook_graph(tmp_path, "https://example.invalid/hook"), registry) == []


def test_a_url_from_a_graph_input_with_another_scheme_fails_before_any_node(
    executor: LocalExecutor, registry: NodeRegistry, tmp_path: Path
) -> None:
    g = marked("hook input", tmp_path)
    g.output("status", g.add("webhook.post", "notify", url=g.input("url", "Text"), payload=1)["status"])
    issues = refused_run(executor, registry, g, tmp_path, {"url": "ftp://files.example.com/x"})
    assert codes(issues) == [("destination_refused", "notify", "url")]
    assert "only http and https URLs" in issues[0]["message"]


# -- folders ----------------------------------------------------------------------------------


def test_an_output_folder_that_cannot_be_written_fails_before_any_node(
    executor: LocalExecutor, registry: NodeRegistry, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    graph = webhook_graph(tmp_path, "https://example.invalid/hook")
    issues = refused_run(executor, registry, graph, tmp_path, config=RunConfig(out_dir=tmp_path / "a-file" / "out"))
    assert codes(issues) == [("out_dir_not_writable", None, "out_dir")]
    assert out_dir_problem(tmp_path / "new" / "nested") is None  # a folder the run can create is fine
    assert not (tmp_path / "new").exists()  # and preflight creates nothing


def picture_graph(folder: Path, model: Path) -> Graph:
    g = marked("picture", folder)
    pipe = g.add("image.pipeline", "pipe", model=str(model))
    picture = g.add("image.generate", "draw", pipe=pipe["pipe"], prompt="a lamp", width=64, height=64, steps=1)
    g.output("images", picture["images"])
    return g


def test_a_missing_model_folder_fails_before_any_node(
    executor: LocalExecutor, registry: NodeRegistry, tmp_path: Path
) -> None:
    issues = refused_run(executor, registry, picture_graph(tmp_path, tmp_path / "no-model"), tmp_path)
    assert codes(issues) == [("model_missing", "pipe", "model")]
    assert f"no model folder at {tmp_path / 'no-model'}" in issues[0]["message"]
    (tmp_path / "empty-model").mkdir()  # a folder, but not a pipeline's
    assert [i.code for i in preflight(picture_graph(tmp_path, tmp_path / "empty-model"), registry)] == ["model_missing"]


# -- every problem at once; third-party hooks ---------------------------------------------------


def test_every_problem_is_reported_at_once(
    executor: LocalExecutor, registry: NodeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_ESPEAK", str(tmp_path / "no-espeak-here"))
    g = speak_graph(tmp_path)
    g.add("webhook.post", "notify", url="http://127.0.0.1/hook", payload={"done": True})
    g.add("control.map", "each", node="nope.nothing", items=[1], item_input="x")
    g.add("pack.licensed", "licensed", text="x", licence="missing")
    g.add("pack.broken_check", "broken", text="x")
    (tmp_path / "a-file").write_text("not a folder")
    issues = refused_run(executor, registry, g, tmp_path, config=RunConfig(out_dir=tmp_path / "a-file" / "out"))
    assert sorted(codes(issues), key=str) == sorted([
        ("out_dir_not_writable", None, "out_dir"), ("program_missing", "speak", None),
        ("destination_refused", "notify", "url"), ("unknown_node_type", "each", "node"),
        ("licence_missing", "licensed", "licence"), ("preflight_error", "broken", None),
    ], key=str)
    broken = next(i for i in issues if i["code"] == "preflight_error")
    assert "RuntimeError: the hook itself is broken" in broken["message"]


def test_a_graph_without_preflight_problems_runs(executor: LocalExecutor, tmp_path: Path) -> None:
    g = marked("fine", tmp_path)
    g.output("text", g.add("pack.licensed", "licensed", text="x")["result"])
    assert nodeloom.run(g, executor=executor).outputs == {"marked": 1.0, "text": "x"}
    assert len(markers(tmp_path, "first")) == 1


# -- the CLI and the API ------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return installed_pack_env(tmp_path)


def test_cli_validate_and_run_report_preflight_problems(tmp_path: Path, cli_env: dict[str, str]) -> None:
    path = tmp_path / "hook.json"
    path.write_text(json.dumps(webhook_graph(tmp_path, "http://127.0.0.1:9/hook").to_json()))
    checked = subprocess.run([str(NODELOOM), "validate", str(path), "--json"], capture_output=True, text=True,
                             env=cli_env, timeout=120)
    assert checked.returncode == 1
    assert [(i["code"], i["node"]) for i in json.loads(checked.stdout)] == [("destination_refused", "notify")]
    allowed = subprocess.run([str(NODELOOM), "validate", str(path), "--allow-private-network"],
                             capture_output=True, text=True, env=cli_env, timeout=120)
    assert allowed.returncode == 0, allowed.stderr
    ran = subprocess.run([str(NODELOOM), "run", str(path), "--out", str(tmp_path / "out")], capture_output=True,
                         text=True, env=cli_env, timeout=120)
    assert ran.returncode == 1 and "destination_refused" in ran.stderr and "Traceback" not in ran.stderr
    assert markers(tmp_path, "first") == []


def test_the_api_refuses_a_run_that_fails_preflight_with_422(tmp_path: Path) -> None:
    from databases import database_url
    from test_api_server import ApiServer, _create_key_cli

    from nodeloom.api.client import ApiClientError, Client

    graph = Graph("hook")
    graph.output("status", graph.add("webhook.post", "notify", url="http://127.0.0.1:9/hook", payload=1)["status"])
    with database_url("sqlite", tmp_path, "nl_preflight") as db_url:
        server = ApiServer(db_url, tmp_path)
        server.start()
        try:
            with Client(server.url, api_key=_create_key_cli(server, "preflight", "admin")) as api:
                with pytest.raises(ApiClientError) as refused:
                    api.submit(graph)
                assert refused.value.status == 422
                issues = refused.value.details["issues"]
                assert [(i["code"], i["node"], i["port"]) for i in issues] == [("destination_refused", "notify", "url")]
                assert list(api.list_runs()) == []  # nothing was queued
        finally:
            server.stop()
