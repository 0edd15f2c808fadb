"""Human approval through the API (`POST /v1/runs/{id}/approvals/{node}`, `Client.approve`,
`Client.reject`, `nodeloom approve`) against a real `nodeloom serve` process: a run waits at a
`control.approve` node without holding a worker, goes on when a person decides (nothing before
the approval runs again), survives a restart of the server while it waits, and takes the
node's default action when its timeout passes.

The graphs use the marker nodes (marker_nodes.py): each execution leaves a file, so the tests
count executions done in the server's worker processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from databases import database_url
from marker_nodes import MODULE, markers, review_graph
from processes import ApiServer, create_key, nodeloom
from sqlalchemy import select

from nodeloom.api.client import ApiClientError, AsyncClient, Client
from nodeloom.api.db import make_engine
from nodeloom.api.schemas import RunInfo, RunState
from nodeloom.api.tables import NodeResultRow


def _waiting(api: Client, run_id: str) -> RunInfo:
    run = api.wait(run_id, timeout=60)
    assert run.status is RunState.WAITING, run.errors
    return run


def _wait_for(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_run_waits_at_the_approval_and_finishes_with_the_approved_value(api: Client, tmp_path: Path) -> None:
    run = _waiting(api, api.submit(review_graph(tmp_path)).id)
    assert {node: info.state for node, info in run.nodes.items()} == {
        "count": "done", "draft": "done", "approve": "waiting", "final": "pending"}
    waiting = [event for event in api.events(run.id) if event.kind == "node.waiting"]
    assert [(event.node, event.data["review"], event.data["message"]) for event in waiting] == [
        ("approve", {"kind": "text", "value": "Buy 3.0 now"}, "check the wording")]
    asked = run.nodes["approve"].approval
    assert asked is not None and asked.action is None and asked.deadline is None

    api.approve(run.id, "approve")

    done = api.wait(run.id, timeout=60)
    assert done.status is RunState.SUCCEEDED and done.outputs == {"text": "Buy 3.0 now!"}
    assert len(markers(tmp_path, "count")) == 1  # nothing before the approval ran again
    decided = done.nodes["approve"].approval
    assert decided is not None and (decided.action, decided.edited) == ("approve", False)
    assert decided.decided_by is not None and decided.decided_by["key"] and decided.decided_at
    kinds = [(event.kind, event.node) for event in api.events(run.id)]
    assert ("node.approved", "approve") in kinds, str(kinds)
    assert kinds[kinds.index(("node.approved", "approve")):].count(("node.cached", "count")) == 1


def test_an_edited_value_is_approved_instead(api: Client, tmp_path: Path) -> None:
    run = _waiting(api, api.submit(review_graph(tmp_path)).id)
    api.approve(run.id, "approve", value="Buy three now")
    done = api.wait(run.id, timeout=60)
    assert done.outputs == {"text": "Buy three now!"}
    approval = done.nodes["approve"].approval
    assert approval is not None and approval.edited and approval.value == "Buy three now"


def test_a_decision_made_while_other_nodes_still_run_is_taken_when_they_have_settled(
    api: Client, tmp_path: Path,
) -> None:
    graph = review_graph(tmp_path)
    graph["nodes"]["slow"] = {"type": "marker.mark",
                              "inputs": {"folder": str(tmp_path), "label": "slow", "value": 1, "seconds": 3}}
    graph["outputs"]["slow"] = {"node": "slow", "output": "value"}
    run_id = api.submit(graph).id
    _wait_for(lambda: api.get_run(run_id).nodes["approve"].state == "waiting")
    assert api.approve(run_id, "approve").status is RunState.RUNNING
    done = api.wait(run_id, timeout=60)
    assert done.status is RunState.SUCCEEDED and done.outputs == {"text": "Buy 3.0 now!", "slow": 1.0}
    assert len(markers(tmp_path, "count")) == 1 and len(markers(tmp_path, "slow")) == 1


def test_a_rejection_ends_the_run_with_the_reason(api: Client, tmp_path: Path) -> None:
    run = _waiting(api, api.submit(review_graph(tmp_path)).id)
    api.reject(run.id, "approve", "too pushy")
    done = api.wait(run.id, timeout=60)
    assert done.status is RunState.FAILED
    assert [(error["node"], error["code"], error["reason"]) for error in done.errors] == [
        ("approve", "approval_rejected", "too pushy")]
    assert done.nodes["final"].state == "skipped"
    rejected = [event for event in api.events(run.id) if event.kind == "node.rejected"]
    assert [event.data["reason"] for event in rejected] == ["too pushy"]


def test_deciding_at_a_node_that_does_not_wait_is_a_conflict(api: Client, tmp_path: Path) -> None:
    run = _waiting(api, api.submit(review_graph(tmp_path)).id)
    with pytest.raises(ApiClientError) as draft:
        api.approve(run.id, "draft")
    assert (draft.value.status, draft.value.code) == (409, "not_waiting")
    assert draft.value.details["state"] == "done"
    api.approve(run.id, "approve")
    with pytest.raises(ApiClientError) as twice:
        api.reject(run.id, "approve", "changed my mind")
    assert (twice.value.status, twice.value.code) == (409, "not_waiting")
    assert api.wait(run.id, timeout=60).status is RunState.SUCCEEDED


def test_an_unknown_run_or_node_is_not_found(api: Client, tmp_path: Path) -> None:
    run = _waiting(api, api.submit(review_graph(tmp_path)).id)
    for run_id, node in (("no-such-run", "approve"), (run.id, "no-such-node")):
        with pytest.raises(ApiClientError) as missing:
            api.approve(run_id, node)
        assert (missing.value.status, missing.value.code) == (404, "not_found")
    api.cancel(run.id)
    assert api.get_run(run.id).status is RunState.CANCELLED


def test_a_read_key_may_not_approve(api: Client, server: ApiServer, tmp_path: Path) -> None:
    run = _waiting(api, api.submit(review_graph(tmp_path)).id)
    with Client(server.url, api_key=create_key(server.db_url, server.env, "alpha", "read")) as reader, \
            pytest.raises(ApiClientError) as refused:
        reader.approve(run.id, "approve")
    assert refused.value.status == 403
    api.cancel(run.id)


def test_the_timeout_takes_the_default_action(api: Client, tmp_path: Path) -> None:
    run = _waiting(api, api.submit(review_graph(tmp_path, timeout=1, on_timeout="approve")).id)
    _wait_for(lambda: api.get_run(run.id).status is not RunState.WAITING)  # the timer looks every second
    done = api.wait(run.id, timeout=60)
    assert done.status is RunState.SUCCEEDED and done.outputs == {"text": "Buy 3.0 now!"}
    approval = done.nodes["approve"].approval
    assert approval is not None and approval.action == "approve"
    assert approval.decided_by == {"key": None, "name": "timeout"}
    assert len(markers(tmp_path, "count")) == 1


def test_the_async_client_approves(server: ApiServer, run_key: str, tmp_path: Path) -> None:
    async def approve() -> RunInfo:
        async with AsyncClient(server.url, api_key=run_key) as client:
            run = await client.wait((await client.submit(review_graph(tmp_path))).id, timeout=60)
            assert run.status is RunState.WAITING
            await client.approve(run.id, "approve", value="Fine")
            return await client.wait(run.id, timeout=60)

    assert asyncio.run(approve()).outputs == {"text": "Fine!"}


def test_nodeloom_approve_decides_through_the_server(api: Client, server: ApiServer, run_key: str,
                                                     tmp_path: Path) -> None:
    run = _waiting(api, api.submit(review_graph(tmp_path)).id)
    env = {**server.env, "NODELOOM_API_URL": server.url, "NODELOOM_API_KEY": run_key}
    refused = nodeloom("approve", run.id, "draft", env=env)
    assert refused.returncode == 1 and "waiting" in refused.stderr and "draft" in refused.stderr
    done = nodeloom("approve", run.id, "approve", "--value", '"Buy 4 now"', env=env)
    assert done.returncode == 0, done.stderr
    assert "approved" in done.stdout
    assert api.wait(run.id, timeout=60).outputs == {"text": "Buy 4 now!"}


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_a_waiting_run_survives_a_restart_and_finishes_without_rerunning(kind: str, tmp_path: Path) -> None:
    home, marks = tmp_path / "home", tmp_path / "marks"
    home.mkdir()
    marks.mkdir()
    with database_url(kind, home) as db_url:
        server = ApiServer(db_url, home, options=["--node-module", MODULE])
        server.start()
        try:
            key = create_key(db_url, server.env, "alpha", "run")
            with Client(server.url, api_key=key) as api:
                run = _waiting(api, api.submit(review_graph(marks)).id)
                _stored(db_url, [info.cache_key for info in run.nodes.values() if info.state == "done"])
            server.kill()  # as a crash would
            server.start()
            with Client(server.url, api_key=key) as api:
                assert api.get_run(run.id).status is RunState.WAITING
                api.approve(run.id, "approve")
                done = api.wait(run.id, timeout=60)
                assert done.status is RunState.SUCCEEDED and done.outputs == {"text": "Buy 3.0 now!"}
                assert {node: info.state for node, info in done.nodes.items()} == {
                    "count": "cached", "draft": "cached", "approve": "done", "final": "done"}
            assert len(markers(marks, "count")) == 1
        finally:
            server.stop()


def _stored(db_url: str, keys: list[str | None]) -> None:
    """Wait until the results under `keys` are in the database (a background writer stores them)."""
    engine = make_engine(db_url)
    try:
        def stored() -> bool:
            with engine.connect() as connection:
                found = connection.execute(select(NodeResultRow.key).where(
                    NodeResultRow.key.in_([key for key in keys if key]))).scalars().all()  # type: ignore[attr-defined]
            return len(found) == len(keys)

        _wait_for(stored)
    finally:
        engine.dispose()


def test_an_artifact_under_review_can_be_downloaded_before_the_decision(api: Client, tmp_path: Path) -> None:
    graph = {
        "name": "review-card",
        "nodes": {
            "card": {"type": "image.title_card", "inputs": {"text": "Loom Lamp", "width": 160, "height": 90}},
            "approve": {"type": "control.approve", "inputs": {"value": {"node": "card", "output": "image"}}},
        },
        "outputs": {"card": {"node": "approve", "output": "value"}},
    }
    run = _waiting(api, api.submit(graph).id)
    (waiting,) = [event for event in api.events(run.id) if event.kind == "node.waiting"]
    review = waiting.data["review"]
    assert review["kind"] == "artifact" and run.outputs in (None, {})
    png = api.download_artifact(run.id, review["value"])
    assert png.startswith(b"\x89PNG")
    with pytest.raises(ApiClientError) as missing:
        api.download_artifact(run.id, "sha256:" + "0" * 64)
    assert missing.value.status == 404
    api.approve(run.id, "approve")
    assert api.download_artifact(run.id, api.wait(run.id, timeout=60).outputs["card"]) == png
