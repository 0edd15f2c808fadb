"""The REST API against a real `nodeloom serve` process on 127.0.0.1, on SQLite and on PostgreSQL.

Every route is exercised through the SDK client (`nodeloom.api.client`). The server runs the
test nodes of conftest.py (`--node-module conftest`) on its local executor.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from databases import KINDS, database_url
from processes import ApiServer, create_key
from sqlalchemy import func, select

from nodeloom.api.client import ApiClientError, AsyncClient, Client
from nodeloom.api.db import make_engine
from nodeloom.api.schemas import RunState, Scope
from nodeloom.api.tables import NodeResultRow
from nodeloom.testing import wait_until


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp(f"api-{request.param}")
    with database_url(request.param, home, "nl_api") as db_url:
        instance = ApiServer(db_url, home)
        instance.start()
        try:
            yield instance
        finally:
            instance.stop()


def _create_key_cli(server: ApiServer, project: str, scopes: str) -> str:
    return create_key(server.db_url, server.env, project, scopes)


@pytest.fixture(scope="module")
def admin_key(server: ApiServer) -> str:
    return _create_key_cli(server, "alpha", "admin")


@pytest.fixture
def api(server: ApiServer, admin_key: str) -> Iterator[Client]:
    with Client(server.url, api_key=admin_key) as client:
        yield client


def greeting_graph(name: str = "greeting") -> dict[str, Any]:
    return {
        "name": name,
        "inputs": {"name": {"type": "Text"}},
        "nodes": {"hello": {"type": "text.template",
                            "inputs": {"template": "Hello {{ name }}!", "name": {"input": "name"}}}},
        "outputs": {"greeting": {"node": "hello", "output": "text"}},
    }


def sleeping_graph(seconds: float, label: str, value: float = 2.5) -> dict[str, Any]:
    """first (instant, returns `value`) -> nap (sleeps `seconds`): a run that stays in flight a while."""
    return {
        "name": "sleeper",
        "nodes": {
            "first": {"type": "test.count", "inputs": {"label": f"{label}-first", "value": value}},
            "nap": {"type": "test.sleep", "inputs": {"label": label, "seconds": seconds,
                                                     "value": {"node": "first", "output": "value"}}},
        },
        "outputs": {"value": {"node": "nap", "output": "value"}},
    }


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    wait_until(predicate, timeout, "the condition")


# -- service and catalog -------------------------------------------------------------


def test_health_and_metrics_need_no_key(server: ApiServer) -> None:
    with Client(server.url) as anonymous:
        health = anonymous.health()
        assert health.status == "ok"
        assert health.database in ("sqlite", "postgresql")
        assert "nodeloom_runs" in anonymous.metrics()


def test_openapi_documents_every_route_with_models(server: ApiServer) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    paths = document["paths"]
    expected = {
        ("get", "/v1/nodes"), ("get", "/v1/nodes/{node_type}"), ("post", "/v1/graphs"), ("get", "/v1/graphs"),
        ("get", "/v1/graphs/{graph_id}"), ("put", "/v1/graphs/{graph_id}"), ("delete", "/v1/graphs/{graph_id}"),
        ("get", "/v1/graphs/{graph_id}/versions"), ("post", "/v1/runs"), ("get", "/v1/runs"),
        ("get", "/v1/runs/{run_id}"), ("post", "/v1/runs/{run_id}/cancel"), ("post", "/v1/runs/{run_id}/resume"),
        ("post", "/v1/runs/{run_id}/retry"),
        ("get", "/v1/runs/{run_id}/events"), ("get", "/v1/runs/{run_id}/artifacts/{digest}"),
        ("post", "/v1/keys"), ("get", "/v1/keys"), ("delete", "/v1/keys/{key_id}"), ("get", "/healthz"),
        ("get", "/metrics"), ("post", "/v1/artifacts"),
    }
    found = {(method, path) for path, item in paths.items() for method in item}
    assert expected <= found
    for method, path in expected:
        operation = paths[path][method]
        assert operation["responses"], (method, path)
        if path.startswith("/v1"):
            error = operation["responses"]["401"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorResponse"}
    assert paths["/v1/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RunSubmit"}
    run_schema = paths["/v1/runs/{run_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert run_schema == {"$ref": "#/components/schemas/RunInfo"}


def test_node_catalog_lists_types_with_json_schemas(api: Client) -> None:
    catalog = {entry.type: entry for entry in api.nodes()}
    assert "text.template" in catalog and "test.sleep" in catalog
    template = api.node("text.template")
    assert "template" in template.inputs["properties"]
    assert template.outputs["properties"]["text"]["type"] == "string"
    with pytest.raises(ApiClientError) as caught:
        api.node("text.templat")
    assert caught.value.status == 404
    assert "text.template" in caught.value.details["suggestions"]


# -- graphs --------------------------------------------------------------------------


def test_graph_updates_make_versions_and_old_versions_stay(api: Client) -> None:
    created = api.create_graph(greeting_graph("versioned graph"), tags=["demo", "v"])
    assert (created.version, created.graph_version, created.tags) == (1, 1, ["demo", "v"])
    changed = greeting_graph("versioned graph")
    changed["nodes"]["hello"]["inputs"]["template"] = "Hi {{ name }}"
    updated = api.update_graph(created.id, changed, tags=["demo"])
    assert (updated.version, updated.tags) == (2, ["demo"])
    assert api.get_graph(created.id).graph["nodes"]["hello"]["inputs"]["template"] == "Hi {{ name }}"
    first = api.get_graph(created.id, version=1)
    assert first.graph["nodes"]["hello"]["inputs"]["template"] == "Hello {{ name }}!"
    assert [v.version for v in api.graph_versions(created.id)] == [1, 2]
    run = api.wait(api.submit(graph_id=created.id, version=1, inputs={"name": "tea"}).id, timeout=60)
    assert (run.graph_version, run.outputs) == (1, {"greeting": "Hello tea!"})


def test_a_saved_graph_of_the_project_runs_as_a_node_and_bad_versions_are_422(
    api: Client, server: ApiServer,
) -> None:
    name = f"greeter-{uuid.uuid4().hex[:8]}"
    saved = api.create_graph(greeting_graph(name))
    changed = greeting_graph(name)
    changed["nodes"]["hello"]["inputs"]["template"] = "Hi {{ name }}"
    api.update_graph(saved.id, changed)
    outer = {
        "name": "uses-greeter",
        "inputs": {"who": {"type": "Text"}},
        "nodes": {"greet": {"type": f"graph:{name}@2", "inputs": {"name": {"input": "who"}}},
                  "shout": {"type": "text.template",
                            "inputs": {"template": "{{ g | upper }}", "g": {"node": "greet", "output": "greeting"}}}},
        "outputs": {"loud": {"node": "shout", "output": "text"}},
    }
    stored = api.create_graph(outer)  # saving validates against the project's graphs too
    run = api.wait(api.submit(graph_id=stored.id, inputs={"who": "tea"}).id, timeout=60)
    assert run.status is RunState.SUCCEEDED and run.outputs == {"loud": "HI TEA"}
    assert set(run.nodes) == {"greet/hello", "shout"}
    outer["nodes"]["greet"]["type"] = f"graph:{name}@7"
    with pytest.raises(ApiClientError) as caught:
        api.submit(outer, {"who": "tea"})
    (issue,) = caught.value.details["issues"]
    assert (caught.value.status, issue["code"], issue["node"], issue["hint"]) == (
        422, "unknown_graph", "greet", "versions: 1, 2")
    other_project = _create_key_cli(server, "gamma-graphs", "run")
    outer["nodes"]["greet"]["type"] = f"graph:{name}@2"
    with Client(server.url, api_key=other_project) as beta, pytest.raises(ApiClientError) as caught:
        beta.submit(outer, {"who": "tea"})
    assert caught.value.details["issues"][0]["code"] == "unknown_graph"


def test_graph_list_filters_by_name_and_tag_and_paginates(api: Client) -> None:
    marker = uuid.uuid4().hex[:8]
    ids = [api.create_graph(greeting_graph(f"listing {marker} {index}"), tags=[f"t{index % 2}-{marker}"]).id
           for index in range(5)]
    page = api.list_graphs(name=f"LISTING {marker}", limit=2)
    assert page.total == 5 and len(page.items) == 2
    rest = api.list_graphs(name=f"listing {marker}", limit=10, offset=2)
    assert len(rest.items) == 3
    assert {g.id for g in page.items} | {g.id for g in rest.items} == set(ids)
    tagged = api.list_graphs(tag=f"t0-{marker}")
    assert {g.id for g in tagged.items} == {ids[0], ids[2], ids[4]} and tagged.total == 3
    assert all(g.tags == [f"t0-{marker}"] for g in tagged.items)
    paged = api.list_graphs(tag=f"t0-{marker}", name=f"listing {marker}", limit=2, offset=2)
    assert paged.total == 3 and [g.id for g in paged.items] == [ids[0]]  # newest first: the oldest is last
    retagged = api.update_graph(ids[1], tags=[f"t0-{marker}", "extra"])
    assert retagged.tags == ["extra", f"t0-{marker}"] and retagged.version == 1
    assert api.list_graphs(tag=f"t0-{marker}").total == 4
    with pytest.raises(ApiClientError) as refused:  # an invalid new version changes nothing, tags included
        api.update_graph(ids[1], graph={"nodes": {"a": {"type": "no.such_node"}}}, tags=["lost"])
    assert refused.value.status == 422
    assert api.get_graph(ids[1]).tags == ["extra", f"t0-{marker}"]
    assert api.list_graphs(tag=f"t1-{marker}").total == 1


def test_saving_an_invalid_graph_returns_every_problem_as_422(api: Client) -> None:
    broken = {"name": "broken", "nodes": {"a": {"type": "text.templat", "inputs": {}}}, "outputs": {}}
    with pytest.raises(ApiClientError) as caught:
        api.create_graph(broken)
    error = caught.value
    assert (error.status, error.code) == (422, "graph_invalid")
    codes = {(issue["code"], issue["node"]) for issue in error.details["issues"]}
    assert ("unknown_node_type", "a") in codes
    assert any(code == "no_outputs" for code, _ in codes)


def test_deleted_graph_is_gone_but_its_runs_stay(api: Client) -> None:
    graph = api.create_graph(greeting_graph("short-lived"))
    run = api.wait(api.submit(graph_id=graph.id, inputs={"name": "x"}).id, timeout=60)
    api.delete_graph(graph.id)
    with pytest.raises(ApiClientError) as caught:
        api.get_graph(graph.id)
    assert caught.value.status == 404
    assert api.get_run(run.id).outputs == {"greeting": "Hello x!"}
    with pytest.raises(ApiClientError) as caught:
        api.submit(graph_id=graph.id, inputs={"name": "x"})
    assert caught.value.status == 404


# -- runs ----------------------------------------------------------------------------


def test_run_records_states_timings_attempts_and_outputs(api: Client) -> None:
    graph = api.create_graph(greeting_graph("recorded"))
    submitted = api.submit(graph_id=graph.id, inputs={"name": "world"})
    assert submitted.status in (RunState.PENDING, RunState.RUNNING, RunState.SUCCEEDED)
    run = api.wait(submitted.id, timeout=60)
    assert run.status is RunState.SUCCEEDED
    assert run.outputs == {"greeting": "Hello world!"}
    node = run.nodes["hello"]
    assert node.state in ("done", "cached") and node.attempts in (0, 1)
    assert run.started_at is not None and run.finished_at is not None and run.duration is not None
    assert run.graph_id == graph.id and run.graph_version == 1


def test_a_finished_run_reads_the_same_from_memory_and_from_the_route(api: Client, server: ApiServer,
                                                                      admin_key: str) -> None:
    run = api.wait(greeting_run(api), timeout=60)
    auth = {"Authorization": f"Bearer {admin_key}"}
    stored = httpx.get(f"{server.url}/v1/runs/{run.id}", headers=auth, timeout=10)  # answered before routing
    routed = httpx.get(f"{server.url}/v1/runs/{run.id}?wait=0", headers=auth, timeout=10)  # by the route
    assert stored.status_code == routed.status_code == 200
    assert stored.content == routed.content and stored.headers["content-type"] == routed.headers["content-type"]
    assert json.loads(stored.content)["outputs"] == {"greeting": "Hello done!"}
    beta_key = _create_key_cli(server, "beta-reader", "read")
    for _ in range(2):  # the second time the key is known: still another project's run
        refused = httpx.get(f"{server.url}/v1/runs/{run.id}", headers={"X-API-Key": beta_key}, timeout=10)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"


def test_runs_list_filters_by_graph_state_and_time(api: Client) -> None:
    graph = api.create_graph(greeting_graph("listed runs"))
    before = datetime.now(UTC) - timedelta(seconds=1)
    ok = [api.submit(graph_id=graph.id, inputs={"name": str(i)}).id for i in range(3)]
    failing = {"name": "fails", "nodes": {"f": {"type": "test.fail", "inputs": {"message": "no"}}},
               "outputs": {"v": {"node": "f", "output": "value"}}}
    failed = api.submit(failing).id
    for run_id in [*ok, failed]:
        api.wait(run_id, timeout=60)
    by_graph = api.list_runs(graph_id=graph.id)
    assert {r.id for r in by_graph.items} == set(ok) and by_graph.total == 3
    failures = api.list_runs(status="failed", since=before)
    assert [r.id for r in failures.items] == [failed]
    assert api.get_run(failed).errors[0]["node"] == "f"
    assert api.list_runs(graph_id=graph.id, until=before).total == 0
    assert api.list_runs(graph_id=graph.id, limit=1, offset=1).items[0].id == ok[1]


def test_submit_with_idempotency_key_returns_the_same_run(api: Client) -> None:
    graph = api.create_graph(greeting_graph("idempotent"))
    key = uuid.uuid4().hex
    first = api.submit(graph_id=graph.id, inputs={"name": "once"}, idempotency_key=key)
    again = api.submit(graph_id=graph.id, inputs={"name": "once"}, idempotency_key=key)
    assert again.id == first.id
    response = api._http.post("/v1/runs", json={"graph_id": graph.id, "inputs": {"name": "once"}},
                              headers={"Idempotency-Key": key})
    assert response.status_code == 200 and response.json()["id"] == first.id
    assert api.list_runs(graph_id=graph.id).total == 1


def test_bad_input_values_are_refused_before_running(api: Client) -> None:
    with pytest.raises(ApiClientError) as caught:
        api.submit(greeting_graph(), {"nme": "typo"})
    assert caught.value.status == 422
    issues = {(i["code"], i["port"]) for i in caught.value.details["issues"]}
    assert ("unknown_input", "nme") in issues and ("missing_input", "name") in issues


def test_request_errors_are_uniform_json(server: ApiServer, admin_key: str) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    response = httpx.post(f"{server.url}/v1/runs", json={"inputs": {}}, headers=headers)
    assert response.status_code == 422
    body = response.json()["error"]
    assert body["code"] == "invalid_request" and "graph_id" in body["message"]
    response = httpx.get(f"{server.url}/v1/nowhere", headers=headers)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = httpx.post(f"{server.url}/v1/graphs", content=b"{not json", headers=headers)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


def test_cancel_stops_a_running_run(api: Client) -> None:
    run = api.submit(sleeping_graph(20, f"cancel-{uuid.uuid4().hex[:6]}"), use_cache=False)
    _wait_for(lambda: api.get_run(run.id).nodes["nap"].state == "running")
    cancelled = api.cancel(run.id)
    assert cancelled.status is RunState.CANCELLED
    assert cancelled.nodes["nap"].state == "cancelled"
    assert api.cancel(run.id).status is RunState.CANCELLED  # a second cancel changes nothing


def test_events_stream_resumes_after_last_event_id(api: Client, server: ApiServer, admin_key: str) -> None:
    graph = {"name": "steps", "nodes": {"s": {"type": "test.steps", "inputs": {"label": "sse", "steps": 4,
                                                                                 "seconds": 0.05}}},
             "outputs": {"n": {"node": "s", "output": "value"}}}
    run = api.submit(graph, use_cache=False)
    events = list(api.events(run.id))
    kinds = [event.kind for event in events]
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
    assert kinds.count("node.progress") == 4
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    # a client that saw up to seq 3 reconnects with Last-Event-ID and gets the rest, nothing twice
    with httpx.stream("GET", f"{server.url}/v1/runs/{run.id}/events",
                      headers={"Authorization": f"Bearer {admin_key}", "Last-Event-ID": "3"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        ids = [int(line.removeprefix("id: ")) for line in response.iter_lines() if line.startswith("id: ")]
    assert ids == [event.seq for event in events[3:]]
    assert [event.seq for event in api.events(run.id, after=len(events) - 1)] == [len(events)]


def test_events_stream_live_while_the_run_goes_on(api: Client) -> None:
    run = api.submit(sleeping_graph(1.0, f"live-{uuid.uuid4().hex[:6]}"), use_cache=False)
    seen: list[tuple[str, float]] = []
    for event in api.events(run.id):
        seen.append((event.kind, time.monotonic()))
    kinds = [kind for kind, _ in seen]
    assert kinds[-1] == "run.finished" and "node.started" in kinds
    nap_started = next(at for kind, at in seen if kind == "node.started")
    assert seen[-1][1] - nap_started > 0.5  # events arrived as they happened, not all at the end


def test_artifacts_download_with_their_content_type(api: Client, server: ApiServer, tmp_path: Path) -> None:
    graph = {"name": "card", "nodes": {"card": {"type": "image.title_card",
                                                "inputs": {"text": "Hi", "width": 64, "height": 32}}},
             "outputs": {"image": {"node": "card", "output": "image"}}}
    run = api.wait(api.submit(graph).id, timeout=60)
    ref = run.outputs["image"]
    assert ref["media_type"] == "image/png"
    data = api.download_artifact(run.id, ref)
    assert data.startswith(b"\x89PNG") and len(data) == ref["size"]
    digest = ref["$artifact"].removeprefix("sha256:")
    response = api._http.get(f"/v1/runs/{run.id}/artifacts/{digest}")
    assert response.headers["content-type"] == "image/png"
    written = api.download_outputs(run.id, tmp_path / "out")
    assert written["image"].read_bytes() == data
    with pytest.raises(ApiClientError) as caught:
        api.download_artifact(run.id, "0" * 64)
    assert caught.value.status == 404
    other = api.wait(api.submit(greeting_graph(), {"name": "n"}).id, timeout=60)
    with pytest.raises(ApiClientError) as caught:  # an artifact is served only through a run that produced it
        api.download_artifact(other.id, ref)
    assert caught.value.status == 404


def test_async_client_covers_the_same_calls(server: ApiServer, admin_key: str) -> None:
    async def scenario() -> tuple[str, list[str], int]:
        async with AsyncClient(server.url, api_key=admin_key) as client:
            graph = await client.create_graph(greeting_graph("async"), tags=["async"])
            run = await client.submit(graph_id=graph.id, inputs={"name": "async"})
            kinds = [event.kind async for event in client.events(run.id)]
            finished = await client.wait(run.id, timeout=60)
            page = await client.list_runs(graph_id=graph.id)
            return str(finished.outputs["greeting"]), kinds, page.total

    greeting, kinds, total = asyncio.run(scenario())
    assert greeting == "Hello async!"
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
    assert total == 1


def test_metrics_count_runs_by_state_and_time_nodes(api: Client) -> None:
    api.wait(api.submit(greeting_graph(), {"name": "metrics"}, use_cache=False).id, timeout=60)
    text = api.metrics()
    succeeded = next(line for line in text.splitlines() if line.startswith('nodeloom_runs{state="succeeded"}'))
    assert float(succeeded.split()[-1]) >= 1
    assert 'nodeloom_node_duration_seconds_count{type="text.template"}' in text


# -- keys and projects ---------------------------------------------------------------


def test_requests_without_a_valid_key_get_401(server: ApiServer) -> None:
    with Client(server.url) as anonymous, pytest.raises(ApiClientError) as caught:
        anonymous.list_runs()
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    with Client(server.url, api_key="nl_000000000000_wrong") as wrong, pytest.raises(ApiClientError) as caught:
        wrong.nodes()
    assert caught.value.status == 401


def test_a_key_without_the_scope_gets_403(api: Client, server: ApiServer) -> None:
    reader = api.create_key(["read"], name="reader")
    assert reader.scopes == [Scope.READ] and reader.key.startswith("nl_")
    api.wait(api.submit(greeting_graph(), {"name": "reader"}, use_cache=False).id, timeout=60)
    with Client(server.url, api_key=reader.key) as client:
        assert client.list_runs().total == api.list_runs().total >= 1  # the project's runs, all of them
        with pytest.raises(ApiClientError) as caught:
            client.submit(greeting_graph(), {"name": "no"})
        assert (caught.value.status, caught.value.code) == (403, "forbidden")
        with pytest.raises(ApiClientError) as caught:
            client.list_keys()
        assert caught.value.status == 403


def test_another_projects_data_is_404(api: Client, server: ApiServer) -> None:
    graph = api.create_graph(greeting_graph("private"))
    run = api.wait(api.submit(graph_id=graph.id, inputs={"name": "secret"}).id, timeout=60)
    beta_key = _create_key_cli(server, "beta", "admin")
    with Client(server.url, api_key=beta_key) as beta:
        for call in (lambda: beta.get_run(run.id), lambda: beta.cancel(run.id), lambda: beta.get_graph(graph.id),
                     lambda: beta.submit(graph_id=graph.id, inputs={"name": "x"}), lambda: list(beta.events(run.id))):
            with pytest.raises(ApiClientError) as caught:
                call()
            assert caught.value.status == 404
        assert run.id not in {r.id for r in beta.list_runs(limit=500).items}
        assert graph.id not in {g.id for g in beta.list_graphs(limit=500).items}
        assert all(key.project == "beta" for key in beta.list_keys())


def test_revoked_key_is_refused(api: Client, server: ApiServer) -> None:
    made = api.create_key(["run"], name="temporary")
    with Client(server.url, api_key=made.key) as client:
        client.nodes()
        api.revoke_key(made.id)
        with pytest.raises(ApiClientError) as caught:
            client.nodes()
        assert caught.value.status == 401
    listed = {key.id: key for key in api.list_keys()}
    assert listed[made.id].revoked_at is not None


# -- durability ----------------------------------------------------------------------


def test_runs_in_flight_when_the_api_dies_are_marked_interrupted_and_resumable(api: Client, server: ApiServer,
                                                                               admin_key: str) -> None:
    label = f"restart-{uuid.uuid4().hex[:6]}"
    finished_before = api.wait(greeting_run(api), timeout=60)
    by_route = api.submit(sleeping_graph(30, label), use_cache=False)
    key = uuid.uuid4().hex
    by_submit = api.submit(sleeping_graph(30, label + "b"), use_cache=False, idempotency_key=key)
    _wait_for(lambda: all(api.get_run(r.id).nodes["nap"].state == "running" for r in (by_route, by_submit)))
    seen_before = max(_events_until_nap_started(api, by_route.id))
    server.kill()
    server.start()
    with Client(server.url, api_key=admin_key) as fresh:
        kept = fresh.get_run(finished_before.id)
        assert kept.status is RunState.SUCCEEDED and kept.outputs == finished_before.outputs == {
            "greeting": "Hello done!"}
        assert kept.nodes["hello"].state == finished_before.nodes["hello"].state
        lost = fresh.get_run(by_route.id)
        assert lost.status is RunState.INTERRUPTED
        assert lost.nodes["first"].state == "done" and lost.nodes["nap"].state == "interrupted"
        assert max(event.seq for event in fresh.events(by_route.id)) == seen_before  # its history is kept
        resumed = fresh.resume(by_route.id)
        assert resumed.id == by_route.id and resumed.resumes == 1
        # the retried submit with the same Idempotency-Key also runs the lost run again
        assert fresh.submit(sleeping_graph(30, label + "b"), use_cache=False, idempotency_key=key).id == by_submit.id
        for run_id in (by_route.id, by_submit.id):
            _wait_for(lambda run_id=run_id: fresh.get_run(run_id).nodes["nap"].state == "running")
            fresh.cancel(run_id)  # no need to sleep 30 s: that it runs again is the point
        again = list(fresh.events(by_route.id))
        seqs = [event.seq for event in again]
        assert seqs == list(range(1, len(seqs) + 1))
        assert [event.kind for event in again].count("run.started") == 2
        with pytest.raises(ApiClientError) as caught:
            fresh.resume(fresh.wait(greeting_run(fresh), timeout=60).id)  # a succeeded run is not resumable
        assert caught.value.status == 409


def test_a_run_resumed_after_a_restart_does_not_rerun_finished_nodes(api: Client, server: ApiServer,
                                                                     admin_key: str) -> None:
    value = uuid.uuid4().int % 10**6 + 0.5  # `first` returns it: finds its stored result below
    run = api.submit(sleeping_graph(30, f"durable-{uuid.uuid4().hex[:6]}", value))
    _wait_for(lambda: api.get_run(run.id).nodes["nap"].state == "running")
    engine = make_engine(server.db_url)
    try:  # the result is stored by a background writer: wait until it is in, then crash the server
        stored = select(func.count()).select_from(NodeResultRow).where(
            NodeResultRow.outputs == json.dumps({"value": value}))  # type: ignore[arg-type]
        def is_stored() -> bool:
            with engine.connect() as connection:
                return bool(connection.execute(stored).scalar_one())

        _wait_for(is_stored)
    finally:
        engine.dispose()
    server.kill()
    server.start()
    with Client(server.url, api_key=admin_key) as fresh:
        assert fresh.get_run(run.id).status is RunState.INTERRUPTED
        fresh.resume(run.id)
        _wait_for(lambda: fresh.get_run(run.id).nodes["nap"].state == "running")
        fresh.cancel(run.id)
        kinds = [(event.kind, event.node) for event in fresh.events(run.id)]
        resumed = kinds[kinds.index(("run.started", None), 1):]
        assert [kind for kind, node in resumed if node == "first"] == ["node.cached"]
        assert fresh.get_run(run.id).nodes["first"].state == "cached"


def greeting_run(client: Client) -> str:
    return client.submit(greeting_graph(), {"name": "done"}).id


def _events_until_nap_started(api: Client, run_id: str) -> list[int]:
    """The seqs a live stream has sent up to the start of node `nap` (the stream stays open after)."""
    seqs: list[int] = []
    with api._http.stream("GET", f"/v1/runs/{run_id}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line.removeprefix("data: "))
                seqs.append(event["seq"])
                if event["kind"] == "node.started" and event["node"] == "nap":
                    break
    return seqs


# -- the schema holds ----------------------------------------------------------------


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_or_schema_violation(server: ApiServer, admin_key: str,
                                                                tmp_path: Path) -> None:
    command = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{server.url}/openapi.json",
               "--checks", "not_a_server_error,status_code_conformance,response_schema_conformance",
               "--max-examples", "15",
               "--phases", "coverage,fuzzing", "--generation-database", "none", "--request-timeout", "10",
               "--header", f"Authorization: Bearer {admin_key}", "--seed", "1",
               # every valid draft request runs the embedded LLM for 10-30 s; the drafts route's
               # request checks and success path have tests of their own below
               "--exclude-path", "/v1/drafts"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=170, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:]


@pytest.mark.slow
def test_draft_from_words_returns_a_graph_that_saves_and_runs(api: Client, server: ApiServer) -> None:
    """`POST /v1/drafts` drives the real drafting machine with the embedded provider (the recipe library
    composes the graph; no LLM call); the graph it returns is accepted by the same server's validation
    on save, and runs; with `base` the same route edits a graph and answers with a diff."""
    if "postgresql" in server.db_url:
        pytest.skip("drafting touches no database: the SQLite server covers the route")
    drafted = api.draft("Write a short tagline for a product", max_repairs=0)
    assert drafted.ok and drafted.refusal is None and drafted.graph is not None
    assert drafted.provider == "local" and drafted.source == "recipes"
    assert drafted.coverage == 1.0 and drafted.clauses and drafted.clauses[0].nodes and drafted.unserved == []
    edited = api.draft("save it to tagline.txt", base=drafted.graph)
    assert edited.ok and edited.graph is not None and edited.diff is not None
    assert any(line.startswith("+ ") and "(file.save)" in line for line in edited.diff)
    saved = api.create_graph(drafted.graph, tags=["drafted"])  # the server validates on save
    values = {field.name: "Loom Lamp" for field in drafted.inputs if field.required and field.type == "Text"}
    if len(values) == len([field for field in drafted.inputs if field.required]):
        run = api.wait(api.submit(graph_id=saved.id, inputs=values).id, timeout=240)
        assert run.status is RunState.SUCCEEDED, run.errors


def test_draft_requests_are_checked(server: ApiServer, admin_key: str) -> None:
    body = {"text": ""}
    anonymous = httpx.post(f"{server.url}/v1/drafts", json=body, timeout=10)
    assert anonymous.status_code == 401
    empty = httpx.post(f"{server.url}/v1/drafts", json=body, headers={"Authorization": f"Bearer {admin_key}"},
                       timeout=10)
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "invalid_request"
    unknown = httpx.post(f"{server.url}/v1/drafts", json={"text": "a poem", "base_url": "http://10.0.0.1"},
                         headers={"Authorization": f"Bearer {admin_key}"}, timeout=10)
    assert unknown.status_code == 422  # the provider's address is the operator's setting, not the caller's
