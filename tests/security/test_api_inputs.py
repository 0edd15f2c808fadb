"""Bad request inputs against the real app (TestClient): every one is refused at the edge with a
structured 4xx error, never a 500, and no run is left half-written. Issue 14."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/databases.py

from databases import KINDS, database_url

from nodeloom.api.app import create_app
from nodeloom.api.auth import create_key
from nodeloom.api.db import make_engine, upgrade_database
from nodeloom.api.schemas import Scope
from nodeloom.api.settings import ApiSettings

HELLO: dict[str, Any] = {
    "name": "hello",
    "inputs": {"name": {"type": "Text", "default": "world"}},
    "nodes": {"greet": {"type": "text.template",
                        "inputs": {"template": "Hello {{ name }}!", "name": {"input": "name"}}}},
    "outputs": {"greeting": {"node": "greet", "output": "text"}},
}
HUGE = 2**70


def _client(url: str, tmp_path: Path, **limits: int) -> Iterator[TestClient]:
    engine = make_engine(url)
    upgrade_database(engine)
    key, _ = create_key(engine, "acme", [Scope.ADMIN])
    engine.dispose()
    # the in-process executor: these cases check the edge, and a worker pool per test would cost seconds each
    app = create_app(ApiSettings(db_url=url, artifacts=tmp_path / "artifacts", executor="local",
                                 **limits))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    with database_url("sqlite", tmp_path) as url:
        yield from _client(url, tmp_path)


@pytest.fixture(params=KINDS)
def any_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """The app on SQLite and on PostgreSQL (which refuses some text SQLite keeps)."""
    with database_url(request.param, tmp_path, "nl_sec") as url:
        yield from _client(url, tmp_path)


@pytest.fixture
def small_api(tmp_path: Path) -> Iterator[TestClient]:
    with database_url("sqlite", tmp_path) as url:
        yield from _client(url, tmp_path, max_body_bytes=4096, max_nodes=3)


def _post_json(client: TestClient, path: str, text: str, headers: dict[str, str] | None = None) -> Any:
    """POST raw JSON text, so escapes such as `\\udfff` reach the server as written."""
    return client.post(path, content=text.encode(), headers={"Content-Type": "application/json", **(headers or {})})


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert set(error) == {"code", "message", "details"}
    return error


def _settled(client: TestClient, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        response = client.get(f"/v1/runs/{run_id}", params={"wait": 5})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] not in ("pending", "running") or time.monotonic() > deadline:
            return body


def _saved_graph(client: TestClient) -> str:
    response = client.post("/v1/graphs", json={"graph": HELLO})
    assert response.status_code == 201, response.text
    graph_id: str = response.json()["id"]
    return graph_id


# -- 7. Idempotency-Key is bound to the request body ---------------------------------


def test_the_same_key_and_body_return_the_first_run(api: TestClient) -> None:
    body = {"graph": HELLO, "inputs": {"name": "tea"}}
    first = api.post("/v1/runs", json=body, headers={"Idempotency-Key": "order-1"})
    again = api.post("/v1/runs", json=body, headers={"Idempotency-Key": "order-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("second", [
    {"graph": HELLO, "inputs": {"name": "coffee"}},
    {"graph": {"nodes": {}}, "inputs": {}},
    {"graph": HELLO, "inputs": {"name": "tea"}, "use_cache": False},
], ids=["other-inputs", "invalid-graph", "other-options"])
def test_the_same_key_with_another_body_is_a_conflict(any_api: TestClient, second: dict[str, Any]) -> None:
    api = any_api
    first = api.post("/v1/runs", json={"graph": HELLO, "inputs": {"name": "tea"}}, headers={"Idempotency-Key": "k"})
    assert first.status_code == 201, first.text
    error = _error(api.post("/v1/runs", json=second, headers={"Idempotency-Key": "k"}), 409,
                   "idempotency_key_reused")
    assert error["details"]["idempotency_key"] == "k"
    assert _settled(api, first.json()["id"])["outputs"] == {"greeting": "Hello tea!"}


@pytest.mark.parametrize("key", ["", " ", "\t"], ids=["empty", "space", "tab"])
def test_an_empty_idempotency_key_is_refused(api: TestClient, key: str) -> None:
    _error(api.post("/v1/runs", json={"graph": HELLO}, headers={"Idempotency-Key": key}), 400,
           "idempotency_key_empty")
    assert api.get("/v1/runs").json()["total"] == 0


# -- 3. invalid Unicode ----------------------------------------------------------------

_SURROGATE = '"\\udfff"'


@pytest.mark.parametrize(("path", "text", "location"), [
    ("/v1/runs", '{"graph": %s, "inputs": {"name": %s}}', "body.inputs.name"),
    ("/v1/runs", '{"graph": %s, "inputs": {"name": "x", %s: 1}}', "body.inputs.?"),
    ("/v1/graphs", '{"graph": %s, "tags": [%s]}', "body.tags.0"),
], ids=["run-input", "input-key", "tag"])
def test_a_lone_surrogate_is_refused_naming_the_field(any_api: TestClient, path: str, text: str,
                                                      location: str) -> None:
    api = any_api

    error = _error(_post_json(api, path, text % (json.dumps(HELLO), _SURROGATE)), 422, "invalid_unicode")
    assert error["details"]["issues"][0]["location"] == location
    assert api.get("/v1/runs").json()["total"] == 0


@pytest.mark.parametrize(("field", "location"), [
    ("name", "body.graph.name"),
    ("template", "body.graph.nodes.greet.inputs.template"),
], ids=["graph-name", "template"])
@pytest.mark.parametrize("path", ["/v1/graphs", "/v1/runs"])
def test_a_lone_surrogate_in_a_graph_document_is_refused(api: TestClient, path: str, field: str,
                                                         location: str) -> None:
    document = json.loads(json.dumps(HELLO))
    if field == "name":
        document["name"] = "SURROGATE"
    else:
        document["nodes"]["greet"]["inputs"]["template"] = "SURROGATE"
    text = json.dumps({"graph": document}).replace('"SURROGATE"', _SURROGATE)
    error = _error(_post_json(api, path, text), 422, "invalid_unicode")
    assert error["details"]["issues"][0]["location"] == location
    assert api.get("/v1/graphs").json()["total"] == 0


def test_text_a_node_made_invalid_is_stored_repaired() -> None:
    from nodeloom.api.recorder import _storable

    assert _storable({"text": "a\udfffb", "\udfff": ["\ud800"]}) == {"text": "a\ufffdb", "\ufffd": ["\ufffd"]}


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_whose_events_cannot_be_stored_is_failed_not_left_running(kind: str, tmp_path: Path) -> None:
    from sqlmodel import Session

    from nodeloom.api.recorder import RunRecorder
    from nodeloom.api.tables import RunNodeRow, RunRow
    from nodeloom.core.events import EventKind, RunEvent

    with database_url(kind, tmp_path, "nl_sec") as url:
        engine = make_engine(url)
        upgrade_database(engine)
        with Session(engine) as session:
            for run_id in ("good", "bad"):
                session.add(RunRow(id=run_id, project="acme", document={}, inputs={}, status="running",
                                   created_at=time.time()))
                session.flush()
                session.add(RunNodeRow(run_id=run_id, node_id="n", type="t", state="running"))
            session.commit()
        recorder = RunRecorder(engine, executor=None)  # type: ignore[arg-type]
        now = time.time()
        # one batch: the good run's event, and two events of the bad run under the same seq
        recorder._store([("good", 0, RunEvent(1, EventKind.NODE_DONE, "x", now, "n", {"attempts": 1})),
                         ("bad", 0, RunEvent(1, EventKind.NODE_STARTED, "y", now, "n", {})),
                         ("bad", 0, RunEvent(1, EventKind.NODE_DONE, "y", now, "n", {}))])
        recorder.close()
        with Session(engine) as session:
            good, bad = session.get(RunRow, "good"), session.get(RunRow, "bad")
            assert good is not None and bad is not None
            assert session.get(RunNodeRow, ("good", "n")).state == "done"  # type: ignore[union-attr]
            assert bad.status == "failed" and bad.finished_at is not None
            assert bad.errors is not None and bad.errors[0]["code"] == "unstorable"
        engine.dispose()


# -- 6. numbers out of range, documents nested too deep ---------------------------------


@pytest.mark.parametrize("query", [
    "/v1/runs?offset=99999999999999999999",
    "/v1/runs?offset=9223372036854775808",
    "/v1/graphs?offset=9223372036854775808",
    "/v1/runs?limit=99999999999999999999",
    "/v1/graphs/GRAPH?version=9223372036854775808",
    f"/v1/graphs/GRAPH?version={HUGE}",
    "/v1/runs/RUN/events?after=9223372036854775808",
], ids=["runs-offset-20-digits", "runs-offset-2**63", "graphs-offset-2**63", "runs-limit", "version-2**63",
        "version-2**70", "events-after-2**63"])
def test_an_overflowing_query_number_is_a_422(api: TestClient, query: str) -> None:
    graph_id = _saved_graph(api)
    run_id = api.post("/v1/runs", json={"graph_id": graph_id}).json()["id"]
    _error(api.get(query.replace("GRAPH", graph_id).replace("RUN", run_id)), 422, "invalid_request")
    assert _settled(api, run_id)["status"] == "succeeded"


def test_an_overflowing_version_in_a_submit_is_a_422(api: TestClient) -> None:
    graph_id = _saved_graph(api)
    error = _error(api.post("/v1/runs", json={"graph_id": graph_id, "version": HUGE}), 422, "invalid_request")
    assert error["details"]["issues"][0]["location"] == "body.version"


@pytest.mark.parametrize("last_event_id", ["99999999999999999999", "9223372036854775808", "-1", "1e3", " 7x"])
def test_an_out_of_range_last_event_id_is_a_422(api: TestClient, last_event_id: str) -> None:
    run_id = api.post("/v1/runs", json={"graph": HELLO}).json()["id"]
    _error(api.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": last_event_id}), 422, "invalid_request")
    assert _settled(api, run_id)["status"] == "succeeded"


def _deep_list_type(depth: int) -> str:
    return "List[" * depth + "Text" + "]" * depth


@pytest.mark.parametrize("path", ["/v1/graphs", "/v1/runs"])
@pytest.mark.parametrize("deep", ["port-type", "json-nesting"])
def test_a_document_nested_too_deep_is_a_422(api: TestClient, path: str, deep: str) -> None:
    if deep == "port-type":
        text = json.dumps({"graph": dict(HELLO, inputs={"name": {"type": _deep_list_type(5000)}})})
    else:
        text = json.dumps({"graph": dict(HELLO, description="DEEP")}).replace('"DEEP"', "[" * 100 + "]" * 100)
    error = _error(_post_json(api, path, text), 422, "too_deep")
    assert error["details"]["issues"][0]["location"].startswith("body.graph.")
    assert api.get("/v1/graphs").json()["total"] == 0


def test_json_nested_past_the_parser_is_a_structured_4xx(api: TestClient) -> None:
    response = _post_json(api, "/v1/graphs", '{"graph": {"description": %s}}' % ("[" * 100_000 + "]" * 100_000))
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/keys"), ("PUT", "/v1/graphs/g"), ("POST", "/v1/runs")])
def test_a_body_that_is_not_utf8_is_a_documented_422(api: TestClient, method: str, path: str) -> None:
    """Found by schemathesis with an admin key: FastAPI answered 400, a status no route documents."""
    response = api.request(method, path, content=b"BV\xff\xfe", headers={"Content-Type": "application/json"})
    error = _error(response, 422, "invalid_request")
    assert error["details"]["issues"][0]["location"] == "body"


def test_a_port_type_within_the_depth_bound_still_validates(api: TestClient) -> None:
    document = dict(HELLO, inputs={"name": {"type": _deep_list_type(3)}})
    response = api.post("/v1/graphs", json={"graph": document})
    assert response.status_code in (201, 422)
    if response.status_code == 422:
        assert response.json()["error"]["code"] == "graph_invalid"


# -- 8. request size limits --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/graphs", "/v1/runs"])
def test_a_body_over_the_limit_is_a_413(small_api: TestClient, path: str) -> None:
    body = {"graph": dict(HELLO, description="x" * 5000)}
    error = _error(small_api.post(path, json=body), 413, "body_too_large")
    assert error["details"]["max_bytes"] == 4096


def test_a_streamed_body_over_the_limit_is_a_413(small_api: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"graph": {"description": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    response = small_api.post("/v1/graphs", content=chunks(), headers={"Content-Type": "application/json"})
    _error(response, 413, "body_too_large")


@pytest.mark.parametrize("path", ["/v1/graphs", "/v1/runs"])
def test_a_graph_with_too_many_nodes_is_a_422(small_api: TestClient, path: str) -> None:
    nodes = {f"n{i}": {"type": "text.template", "inputs": {"template": "x"}} for i in range(4)}
    document = {"name": "big", "nodes": nodes, "outputs": {"t": {"node": "n0", "output": "text"}}}
    error = _error(small_api.post(path, json={"graph": document}), 422, "too_many_nodes")
    assert error["details"] == {"nodes": 4, "max_nodes": 3}


def test_a_body_within_the_limits_is_served(small_api: TestClient) -> None:
    run = small_api.post("/v1/runs", json={"graph": HELLO, "inputs": {"name": "tea"}})
    assert run.status_code == 201, run.text
    assert _settled(small_api, run.json()["id"])["outputs"] == {"greeting": "Hello tea!"}


# -- 4. a long poll answers one settled snapshot -------------------------------------------


def test_a_wait_right_after_submit_answers_the_settled_run(api: TestClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def submit_and_wait(index: int) -> list[dict[str, Any]]:
        run_id = api.post("/v1/runs", json={"graph": HELLO, "inputs": {"name": f"t{index}"}}).json()["id"]
        with ThreadPoolExecutor(3) as pool:  # plain reads cache the finished body while the waits read
            answers = list(pool.map(lambda _: api.get(f"/v1/runs/{run_id}", params={"wait": 10}), range(3)))
        return [answer.json() for answer in answers]

    for index in range(15):
        for body in submit_and_wait(index):
            assert body["status"] == "succeeded", body
            assert {node["state"] for node in body["nodes"].values()} == {"done"}, body
            assert body["outputs"] == {"greeting": f"Hello t{index}!"}
