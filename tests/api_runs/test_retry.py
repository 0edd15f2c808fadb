"""Retrying a run (`POST /v1/runs/{id}/retry`, `Client.retry`, `nodeloom run --retry`) against a real
`nodeloom serve` process: only the failed, skipped and changed nodes run again.

The graphs use the marker nodes (marker_nodes.py): each execution leaves a file, so the test
counts executions done in the server's worker processes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from marker_nodes import markers
from processes import ApiServer, create_key, nodeloom

from nodeloom.api.client import ApiClientError, AsyncClient, Client
from nodeloom.api.schemas import RunInfo, RunRetried, RunState


def failing_last_graph(folder: Path) -> dict[str, Any]:
    """fetch -> name -> post (fails its 3 tries in the first run, succeeds on the 4th) -> report."""
    where = str(folder)
    return {
        "name": "retry-me",
        "nodes": {
            "fetch": {"type": "marker.mark", "inputs": {"folder": where, "label": "fetch", "value": 3}},
            "name": {"type": "text.template",
                     "inputs": {"template": "post-{{ n }}", "n": {"node": "fetch", "output": "value"}}},
            "post": {"type": "marker.flaky",
                     "inputs": {"folder": where, "label": {"node": "name", "output": "text"}, "failures": 3}},
            "report": {"type": "marker.mark",
                       "inputs": {"folder": where, "label": "report", "value": {"node": "post", "output": "value"}}},
        },
        "outputs": {"tries": {"node": "report", "output": "value"}},
    }


def two_step_graph(folder: Path, seconds: float = 0.0) -> dict[str, Any]:
    where = str(folder)
    return {
        "name": "two-step",
        "nodes": {
            "fetch": {"type": "marker.mark", "inputs": {"folder": where, "label": "fetch", "value": 2}},
            "report": {"type": "marker.mark", "inputs": {"folder": where, "label": "report", "seconds": seconds,
                                                         "value": {"node": "fetch", "output": "value"}}},
        },
        "outputs": {"value": {"node": "report", "output": "value"}},
    }


def _started_nodes(api: Client, run_id: str) -> set[str]:
    return {event.node for event in api.events(run_id) if event.kind == "node.started" and event.node}


def test_retry_runs_only_the_failed_and_skipped_nodes(api: Client, tmp_path: Path) -> None:
    saved = api.create_graph(failing_last_graph(tmp_path))
    first = api.wait(api.submit(graph_id=saved.id).id, timeout=60)
    assert first.status is RunState.FAILED
    assert {node: info.state for node, info in first.nodes.items()} == {
        "fetch": "done", "name": "done", "post": "failed", "report": "skipped"}

    retried = api.retry(first.id)

    assert retried.retry_of == first.id and retried.run.id != first.id
    assert retried.rerun == ["post", "report"]
    assert retried.reused == ["fetch", "name"]
    assert {node.node: node.earlier_state for node in retried.nodes} == {
        "fetch": "done", "name": "done", "post": "failed", "report": "skipped"}
    second = api.wait(retried.run.id, timeout=60)
    assert second.status is RunState.SUCCEEDED
    assert (second.graph_id, second.graph_version, second.inputs) == (first.graph_id, first.graph_version, {})
    assert {node: info.state for node, info in second.nodes.items()} == {
        "fetch": "cached", "name": "cached", "post": "done", "report": "done"}
    assert _started_nodes(api, second.id) == {"post", "report"}
    assert second.outputs == {"tries": 4.0}
    assert len(markers(tmp_path, "fetch")) == 1  # not executed again
    assert len(markers(tmp_path, "post-3.0")) == 4


def test_retry_at_a_newer_version_runs_only_the_changed_nodes(api: Client, tmp_path: Path) -> None:
    saved = api.create_graph(two_step_graph(tmp_path))
    first = api.wait(api.submit(graph_id=saved.id).id, timeout=60)
    assert first.status is RunState.SUCCEEDED
    api.update_graph(saved.id, two_step_graph(tmp_path, seconds=0.01))  # version 2 changes `report`

    retried = api.retry(first.id, version=2)

    assert (retried.rerun, retried.reused) == (["report"], ["fetch"])
    second = api.wait(retried.run.id, timeout=60)
    assert (second.status, second.graph_version) == (RunState.SUCCEEDED, 2)
    assert len(markers(tmp_path, "fetch")) == 1
    assert len(markers(tmp_path, "report")) == 2


def test_retrying_a_succeeded_run_of_an_inline_graph_reuses_every_node(server: ApiServer, run_key: str,
                                                                       tmp_path: Path) -> None:
    async def retry() -> tuple[RunRetried, RunInfo]:
        async with AsyncClient(server.url, api_key=run_key) as api:
            first = await api.wait((await api.submit(two_step_graph(tmp_path))).id, timeout=60)
            assert first.status is RunState.SUCCEEDED
            retried = await api.retry(first.id)
            return retried, await api.wait(retried.run.id, timeout=60)

    retried, second = asyncio.run(retry())

    assert (retried.rerun, retried.reused) == ([], ["fetch", "report"])
    assert (second.status, second.graph_id, second.outputs) == (RunState.SUCCEEDED, None, {"value": 2.0})
    assert len(markers(tmp_path, "report")) == 1


def test_retrying_an_unknown_run_is_404(server: ApiServer, run_key: str) -> None:
    response = httpx.post(f"{server.url}/v1/runs/nope/retry", headers={"Authorization": f"Bearer {run_key}"})
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no run 'nope' in this project",
                                         "details": {"run": "nope"}}}


def test_retrying_a_run_in_flight_is_409(api: Client, tmp_path: Path) -> None:
    graph = {"name": "slow", "nodes": {"wait": {"type": "marker.wait",
                                                "inputs": {"folder": str(tmp_path), "label": "w", "seconds": 20}}},
             "outputs": {"seconds": {"node": "wait", "output": "value"}}}
    running = api.submit(graph)
    try:
        with pytest.raises(ApiClientError) as refused:
            api.retry(running.id)
        assert (refused.value.status, refused.value.code) == (409, "run_in_flight")
        assert refused.value.details["run"] == running.id
    finally:
        api.cancel(running.id)


def test_retrying_at_a_version_the_graph_does_not_have_is_422(api: Client, tmp_path: Path) -> None:
    saved = api.create_graph(two_step_graph(tmp_path))
    of_saved = api.wait(api.submit(graph_id=saved.id).id, timeout=60)
    inline = api.wait(api.submit(two_step_graph(tmp_path)).id, timeout=60)
    for run_id in (of_saved.id, inline.id):
        with pytest.raises(ApiClientError) as refused:
            api.retry(run_id, version=9)
        assert (refused.value.status, refused.value.code) == (422, "invalid_version")
        assert refused.value.details["version"] == 9


def test_retrying_needs_the_run_scope(server: ApiServer, api: Client, tmp_path: Path) -> None:
    finished = api.wait(api.submit(two_step_graph(tmp_path)).id, timeout=60)
    reader = create_key(server.db_url, server.env, "alpha", "read")
    with Client(server.url, api_key=reader) as read_only, pytest.raises(ApiClientError) as refused:
        read_only.retry(finished.id)
    assert refused.value.status == 403


def test_cli_retries_a_run_of_the_server(server: ApiServer, api: Client, run_key: str, tmp_path: Path) -> None:
    saved = api.create_graph(failing_last_graph(tmp_path))
    first = api.wait(api.submit(graph_id=saved.id).id, timeout=60)
    assert first.status is RunState.FAILED
    env = {**server.env, "NODELOOM_API_URL": server.url, "NODELOOM_API_KEY": run_key, "NO_COLOR": "1",
           "COLUMNS": "200"}

    done = nodeloom("run", "--retry", first.id, "--out", str(tmp_path / "out"), env=env)

    assert done.returncode == 0, done.stderr
    assert f"retrying run {first.id} as run " in done.stdout
    assert "2 of 4 nodes run, 2 take the earlier results" in done.stdout
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["status"] == "succeeded"
    assert json.loads((tmp_path / "out" / "outputs.json").read_text()) == {"tries": 4.0}
    assert len(markers(tmp_path, "fetch")) == 1


def test_cli_retry_takes_no_graph_file(server: ApiServer, tmp_path: Path) -> None:
    done = nodeloom("run", "graph.json", "--retry", "abc", env={**server.env, "NODELOOM_API_URL": server.url})
    assert done.returncode == 2
    assert "--retry reruns the run's own graph and inputs" in done.stderr
