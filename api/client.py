"""The SDK client of the REST API: `Client` (blocking) and `AsyncClient`, on httpx.

    from nodeloom.api.client import Client

    with Client("http://127.0.0.1:8000", api_key="nl_...") as api:
        run = api.submit(graph, {"topic": "tea"})
        for event in api.events(run.id):
            print(event.kind, event.node)
        print(api.wait(run.id).outputs)

Both clients cover every route and share the request building below; they need only
httpx and pydantic (not FastAPI). Errors raise `ApiClientError` with the server's code.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from nodeloom.api.schemas import (
    ApprovalDecision,
    ArtifactInfo,
    CatchUp,
    DraftRequest,
    DraftResponse,
    GraphCreate,
    GraphInfo,
    GraphPage,
    GraphUpdate,
    GraphVersionInfo,
    Health,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    NodeCatalogResponse,
    NodeTypeInfo,
    RunEventInfo,
    RunInfo,
    RunPage,
    RunPreview,
    RunRetried,
    RunRetry,
    RunState,
    RunSubmit,
    ScheduleCreate,
    ScheduleInfo,
    Scope,
    TriggerCreate,
    TriggerCreated,
    TriggerFired,
    TriggerInfo,
)
from nodeloom.api.signing import DELIVERY_HEADER, SIGNATURE_HEADER, signature
from nodeloom.core.errors import NodeloomError, RunTimeoutError
from nodeloom.core.graph import Graph

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
_ARTIFACT_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "audio/wav": ".wav", "video/mp4": ".mp4",
                        "audio/mpeg": ".mp3", "image/webp": ".webp", "application/json": ".json",
                        "text/plain": ".txt"}


class ApiClientError(NodeloomError):
    """The API answered with an error: `status` (HTTP), `code`, `message` and `details` from its body."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


# -- requests, built once for both clients ---------------------------------------------


@dataclass
class _Call:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds for this call (None: the client's timeout); drafting takes longer than a read
    timeout: float | None = None
    #: a raw body sent as it is (a trigger delivery, whose signature covers these exact bytes)
    content: bytes | None = None

    @property
    def timeout_option(self) -> Any:
        return httpx.USE_CLIENT_DEFAULT if self.timeout is None else self.timeout


def _graph_json(graph: Graph | Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(graph, Graph):
        return graph.to_json()
    if isinstance(graph, str):
        loaded = json.loads(graph)
        if not isinstance(loaded, dict):
            raise ValueError("a graph document is a JSON object")
        return loaded
    return dict(graph)


def _draft_call(text: str, max_repairs: int | None, timeout: float, base: Mapping[str, Any] | None = None) -> _Call:
    body = DraftRequest(text=text, max_repairs=max_repairs, base=dict(base) if base is not None else None).model_dump(
        mode="json", exclude_none=True)
    return _Call("POST", "/v1/drafts", body=body, timeout=timeout)


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _moment(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _submit_call(graph: Graph | Mapping[str, Any] | str | None, inputs: Mapping[str, Any] | None,
                 graph_id: str | None, version: int | None, use_cache: bool, idempotency_key: str | None) -> _Call:
    body = RunSubmit(graph=None if graph is None else _graph_json(graph), graph_id=graph_id, version=version,
                     inputs=dict(inputs or {}), use_cache=use_cache)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return _Call("POST", "/v1/runs", body=body.model_dump(exclude_none=True), headers=headers)


def _upload_call(data: bytes | str | os.PathLike[str], media_type: str | None) -> _Call:
    """`POST /v1/artifacts` with the bytes (or the file at a path); the media type guessed from the path's name."""
    if not isinstance(data, bytes):
        path = Path(data)
        media_type = media_type or mimetypes.guess_type(path.name)[0]
        data = path.read_bytes()
    return _Call("POST", "/v1/artifacts", headers={"Content-Type": media_type or "application/octet-stream"},
                 content=data)


def _artifact_ref(response: httpx.Response) -> dict[str, Any]:
    return _parse(response, ArtifactInfo).model_dump(by_alias=True)


def _retry_call(run_id: str, version: int | None) -> _Call:
    return _Call("POST", f"/v1/runs/{run_id}/retry", body=RunRetry(version=version).model_dump(exclude_none=True))


#: what `approve` sends when no edited value is given: the value under review is approved as it is
_AS_IS: Any = object()


def _approval_call(run_id: str, node: str, action: str, reason: str | None, value: Any) -> _Call:
    decision = ApprovalDecision(action=action, reason=reason) if value is _AS_IS else \
        ApprovalDecision(action=action, reason=reason, value=value)
    body = decision.model_dump(exclude_unset=True)
    return _Call("POST", f"/v1/runs/{run_id}/approvals/{quote(node, safe='/')}", body=body)


def _trigger_call(graph_id: str, version: int | None, name: str, input_map: Mapping[str, str] | None) -> _Call:
    body = TriggerCreate(graph_id=graph_id, version=version, name=name,
                         input_map=None if input_map is None else dict(input_map))
    return _Call("POST", "/v1/triggers", body=body.model_dump(exclude_none=True))


def _deliver_call(trigger_id: str, secret: str, payload: Any, delivery_id: str | None) -> _Call:
    content = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(secret, content)}
    if delivery_id:
        headers[DELIVERY_HEADER] = delivery_id
    return _Call("POST", f"/v1/triggers/{trigger_id}", headers=headers, content=content)


def _schedule_call(graph_id: str, cron: str, timezone: str, inputs: Mapping[str, Any] | None, version: int | None,
                   name: str, allow_overlap: bool, catchup: CatchUp | str) -> _Call:
    body = ScheduleCreate(graph_id=graph_id, cron=cron, timezone=timezone, inputs=dict(inputs or {}),
                          version=version, name=name, allow_overlap=allow_overlap, catchup=CatchUp(catchup))
    return _Call("POST", "/v1/schedules", body=body.model_dump(mode="json", exclude_none=True))


def _list_runs_call(graph_id: str | None, status: RunState | str | None, since: datetime | float | None,
                    until: datetime | float | None, limit: int, offset: int) -> _Call:
    params = _drop_none({"graph_id": graph_id, "status": None if status is None else RunState(status).value,
                         "since": _moment(since), "until": _moment(until), "limit": limit, "offset": offset})
    return _Call("GET", "/v1/runs", params=params)


#: seconds one long-polling request of `wait` may last (the server allows up to 60)
_LONG_POLL = 20.0


def _wait_call(run_id: str, seconds: float) -> _Call:
    return _Call("GET", f"/v1/runs/{run_id}", params={"wait": round(seconds, 3)} if seconds > 0 else {})


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message, details = str(error["code"]), str(error["message"]), dict(error.get("details") or {})
    except (ValueError, KeyError, TypeError):
        code, message, details = "http_error", response.text[:500] or response.reason_phrase, {}
    raise ApiClientError(response.status_code, code, message, details)


def _parse(response: httpx.Response, model: type[T] | TypeAdapter[T]) -> T:
    _raise_for(response)
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    return adapter.validate_json(response.content)


class _SseParser:
    """Turns the lines of a text/event-stream into `RunEventInfo`s; remembers the last id."""

    def __init__(self, last_id: int) -> None:
        self.last_id = last_id
        self._data: list[str] = []

    def feed(self, line: str) -> RunEventInfo | None:
        if line == "":
            if not self._data:
                return None
            event = RunEventInfo.model_validate_json("\n".join(self._data))
            self._data = []
            self.last_id = max(self.last_id, event.seq)
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        return None


def _is_finished(event: RunEventInfo) -> bool:
    # a run that settled waiting for an approval goes on after the decision, under the same id
    return event.kind == "run.finished" and event.data.get("status") != "waiting"


def _artifacts(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        if isinstance(value.get("$artifact"), str):
            yield path, value
            return
        for key, item in value.items():
            yield from _artifacts(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _artifacts(item, f"{path}.{index}")


def _artifact_name(path: str, ref: Mapping[str, Any]) -> str:
    extension = _ARTIFACT_EXTENSIONS.get(str(ref.get("media_type")), ".bin")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in path) + extension


def _settings(base_url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    url = (base_url or os.environ.get("NODELOOM_API_URL") or DEFAULT_URL).rstrip("/")
    key = api_key or os.environ.get("NODELOOM_API_KEY")
    return url, ({"Authorization": f"Bearer {key}"} if key else {})


_KEY_LIST = TypeAdapter(list[KeyInfo])
_TRIGGER_LIST = TypeAdapter(list[TriggerInfo])
_SCHEDULE_LIST = TypeAdapter(list[ScheduleInfo])
_VERSION_LIST = TypeAdapter(list[GraphVersionInfo])


# -- the blocking client -----------------------------------------------------------------


class Client:
    """A blocking client of the nodeloom REST API.

    `base_url` defaults to `$NODELOOM_API_URL` (else http://127.0.0.1:8000) and `api_key`
    to `$NODELOOM_API_KEY`.
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        url, headers = _settings(base_url, api_key)
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout, transport=transport)
        self._poll = max(0.0, min(_LONG_POLL, timeout - 2))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, call: _Call) -> httpx.Response:
        return self._http.request(call.method, call.path, params=call.params, json=call.body, headers=call.headers,
                                  content=call.content, timeout=call.timeout_option)

    # service
    def health(self) -> Health:
        """`GET /healthz`."""
        return _parse(self._send(_Call("GET", "/healthz")), Health)

    def metrics(self) -> str:
        """`GET /metrics`: the Prometheus text."""
        response = self._send(_Call("GET", "/metrics"))
        _raise_for(response)
        return response.text

    # nodes
    def nodes(self) -> list[NodeTypeInfo]:
        """The node catalog."""
        return _parse(self._send(_Call("GET", "/v1/nodes")), NodeCatalogResponse).nodes

    def node(self, node_type: str) -> NodeTypeInfo:
        """One node type, with the JSON Schemas of its inputs and outputs."""
        return _parse(self._send(_Call("GET", f"/v1/nodes/{node_type}")), NodeTypeInfo)

    # graphs
    def create_graph(self, graph: Graph | Mapping[str, Any] | str, tags: Iterable[str] = ()) -> GraphInfo:
        """Save a graph; raises `ApiClientError` (422, `graph_invalid`) listing every problem."""
        body = GraphCreate(graph=_graph_json(graph), tags=list(tags)).model_dump()
        return _parse(self._send(_Call("POST", "/v1/graphs", body=body)), GraphInfo)

    def list_graphs(self, name: str | None = None, tag: str | None = None, limit: int = 50,
                    offset: int = 0) -> GraphPage:
        params = _drop_none({"name": name, "tag": tag, "limit": limit, "offset": offset})
        return _parse(self._send(_Call("GET", "/v1/graphs", params=params)), GraphPage)

    def get_graph(self, graph_id: str, version: int | None = None) -> GraphInfo:
        return _parse(self._send(_Call("GET", f"/v1/graphs/{graph_id}", params=_drop_none({"version": version}))),
                      GraphInfo)

    def graph_versions(self, graph_id: str) -> list[GraphVersionInfo]:
        return _parse(self._send(_Call("GET", f"/v1/graphs/{graph_id}/versions")), _VERSION_LIST)

    def update_graph(self, graph_id: str, graph: Graph | Mapping[str, Any] | str | None = None,
                     tags: Iterable[str] | None = None) -> GraphInfo:
        """A new version (when `graph` is given) and/or new tags."""
        body = GraphUpdate(graph=None if graph is None else _graph_json(graph),
                           tags=None if tags is None else list(tags)).model_dump(exclude_none=True)
        return _parse(self._send(_Call("PUT", f"/v1/graphs/{graph_id}", body=body)), GraphInfo)

    def delete_graph(self, graph_id: str) -> None:
        _raise_for(self._send(_Call("DELETE", f"/v1/graphs/{graph_id}")))

    # runs
    def submit(self, graph: Graph | Mapping[str, Any] | str | None = None, inputs: Mapping[str, Any] | None = None,
               *, graph_id: str | None = None, version: int | None = None, use_cache: bool = True,
               idempotency_key: str | None = None) -> RunInfo:
        """Start a run of an inline `graph` or of the saved graph `graph_id` (at `version`, default newest)."""
        call = _submit_call(graph, inputs, graph_id, version, use_cache, idempotency_key)
        return _parse(self._send(call), RunInfo)

    def preview(self, graph: Graph | Mapping[str, Any] | str | None = None, inputs: Mapping[str, Any] | None = None,
                *, graph_id: str | None = None, version: int | None = None, use_cache: bool = True) -> RunPreview:
        """`POST /v1/runs?dry_run=true`: which nodes a run would run and which would come from the cache."""
        call = _submit_call(graph, inputs, graph_id, version, use_cache, None)
        call.params["dry_run"] = "true"
        return _parse(self._send(call), RunPreview)

    def get_run(self, run_id: str) -> RunInfo:
        return _parse(self._send(_Call("GET", f"/v1/runs/{run_id}")), RunInfo)

    def list_runs(self, graph_id: str | None = None, status: RunState | str | None = None,
                  since: datetime | float | None = None, until: datetime | float | None = None,
                  limit: int = 50, offset: int = 0) -> RunPage:
        return _parse(self._send(_list_runs_call(graph_id, status, since, until, limit, offset)), RunPage)

    def cancel(self, run_id: str) -> RunInfo:
        return _parse(self._send(_Call("POST", f"/v1/runs/{run_id}/cancel")), RunInfo)

    def resume(self, run_id: str) -> RunInfo:
        """Run an interrupted, failed or cancelled run again (same id; its events number on)."""
        return _parse(self._send(_Call("POST", f"/v1/runs/{run_id}/resume")), RunInfo)

    def retry(self, run_id: str, *, version: int | None = None) -> RunRetried:
        """Start a new run of a finished run's graph (or of `version` of the same saved graph) with its inputs,
        in which only the failed, skipped and changed nodes run; the answer lists them (`rerun`) and the nodes
        that take the earlier results (`reused`)."""
        return _parse(self._send(_retry_call(run_id, version)), RunRetried)

    def approve(self, run_id: str, node: str, *, value: Any = _AS_IS, reason: str | None = None) -> RunInfo:
        """Approve the value a `control.approve` node waits on (or, with `value`, an edited value instead);
        the run goes on. 409 (`ApiClientError`, code `not_waiting`) when the node does not wait."""
        return _parse(self._send(_approval_call(run_id, node, "approve", reason, value)), RunInfo)

    def reject(self, run_id: str, node: str, reason: str) -> RunInfo:
        """Reject the value a `control.approve` node waits on: the node fails with `reason`."""
        return _parse(self._send(_approval_call(run_id, node, "reject", reason, _AS_IS)), RunInfo)

    def wait(self, run_id: str, timeout: float | None = None) -> RunInfo:
        """Wait (long polls of `GET /v1/runs/{id}?wait=`) until the run has finished, was interrupted or
        waits for an approval (`approve`); `TimeoutError` after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = self._poll if deadline is None else min(self._poll, max(deadline - time.monotonic(), 0))
            run = _parse(self._send(_wait_call(run_id, remaining)), RunInfo)
            if run.status.terminal or run.status in (RunState.INTERRUPTED, RunState.WAITING):
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise RunTimeoutError(f"run {run_id} is still {run.status.value} after {timeout} s", run_id=run_id,
                                      timeout=timeout)

    def run(self, graph: Graph | Mapping[str, Any] | str, inputs: Mapping[str, Any] | None = None,
            timeout: float | None = None) -> RunInfo:
        """Submit an inline graph and wait for the finished run."""
        return self.wait(self.submit(graph, inputs).id, timeout)

    def events(self, run_id: str, after: int = 0, *, reconnect: int = 3) -> Iterator[RunEventInfo]:
        """The run's events (seq > `after`) until it finishes (or waits for an approval); reconnects with
        `Last-Event-ID` if cut off."""
        parser = _SseParser(after)
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(parser.last_id)} if parser.last_id else {}
            try:
                with self._http.stream("GET", f"/v1/runs/{run_id}/events", headers=headers,
                                       timeout=httpx.Timeout(30.0, read=None)) as response:
                    if response.status_code >= 400:
                        response.read()
                        _raise_for(response)
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            failures = 0
                            yield event
                            if _is_finished(event):
                                return
                return  # the server ended the stream: the run finished or was interrupted
            except httpx.TransportError:
                failures += 1
                if failures > reconnect:
                    raise
                time.sleep(0.2 * failures)

    def upload_artifact(self, data: bytes | str | os.PathLike[str], media_type: str | None = None) -> dict[str, Any]:
        """`POST /v1/artifacts`: store a file (its bytes, or the file at a path) and answer its reference
        (`{"$artifact": "sha256:...", "media_type", "size", "kind"}`), the value of a run input of type Image,
        Audio, Video or File. `media_type` defaults to the one a path's name says, else application/octet-stream."""
        return _artifact_ref(self._send(_upload_call(data, media_type)))

    def download_artifact(self, run_id: str, artifact: str | Mapping[str, Any]) -> bytes:
        """The bytes of an output artifact, or of one a `control.approve` node asks to review (its
        `{"$artifact": ...}` reference or digest)."""
        digest = artifact if isinstance(artifact, str) else str(artifact["$artifact"])
        response = self._send(_Call("GET", f"/v1/runs/{run_id}/artifacts/{digest.removeprefix('sha256:')}"))
        _raise_for(response)
        return response.content

    def download_outputs(self, run_id: str, folder: str | os.PathLike[str]) -> dict[str, Path]:
        """Write the run's outputs into `folder`: artifacts as files, everything in `outputs.json`."""
        run = self.get_run(run_id)
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        for path, ref in _artifacts(run.outputs):
            file = target / _artifact_name(path, ref)
            file.write_bytes(self.download_artifact(run_id, ref))
            written[path] = file
        (target / "outputs.json").write_text(json.dumps(run.outputs, indent=2, ensure_ascii=False))
        written["outputs.json"] = target / "outputs.json"
        return written

    # drafts
    def draft(self, text: str, max_repairs: int | None = None, timeout: float = 300.0,
              base: Mapping[str, Any] | None = None) -> DraftResponse:
        """`POST /v1/drafts`: a graph drafted from `text` (needs `run`); see `.ok`. With `base` (a graph
        document), `text` is an instruction to edit it and `.diff` lists the changes."""
        return _parse(self._send(_draft_call(text, max_repairs, timeout, base)), DraftResponse)

    # keys
    def create_key(self, scopes: Iterable[Scope | str], name: str = "") -> KeyCreated:
        """A new key of the caller's project (needs `admin`); its secret is in `.key`, this once."""
        body = KeyCreate(scopes=[Scope(s) for s in scopes], name=name).model_dump(mode="json")
        return _parse(self._send(_Call("POST", "/v1/keys", body=body)), KeyCreated)

    def list_keys(self) -> list[KeyInfo]:
        return _parse(self._send(_Call("GET", "/v1/keys")), _KEY_LIST)

    def revoke_key(self, key_id: str) -> None:
        _raise_for(self._send(_Call("DELETE", f"/v1/keys/{key_id}")))

    # triggers and schedules
    def create_trigger(self, graph_id: str, *, version: int | None = None, name: str = "",
                       input_map: Mapping[str, str] | None = None) -> TriggerCreated:
        """A webhook trigger of a saved graph (needs `admin`); its signing secret is in `.secret`, this once."""
        return _parse(self._send(_trigger_call(graph_id, version, name, input_map)), TriggerCreated)

    def list_triggers(self) -> list[TriggerInfo]:
        return _parse(self._send(_Call("GET", "/v1/triggers")), _TRIGGER_LIST)

    def delete_trigger(self, trigger_id: str) -> None:
        _raise_for(self._send(_Call("DELETE", f"/v1/triggers/{trigger_id}")))

    def deliver(self, trigger_id: str, secret: str, payload: Any, delivery_id: str | None = None) -> TriggerFired:
        """Send `payload` to a trigger as a webhook sender would: JSON, signed with `secret`."""
        return _parse(self._send(_deliver_call(trigger_id, secret, payload, delivery_id)), TriggerFired)

    def create_schedule(self, graph_id: str, cron: str, *, timezone: str = "UTC",
                        inputs: Mapping[str, Any] | None = None, version: int | None = None, name: str = "",
                        allow_overlap: bool = False, catchup: CatchUp | str = CatchUp.LATEST) -> ScheduleInfo:
        """Run a saved graph on a cron schedule (needs `admin`)."""
        call = _schedule_call(graph_id, cron, timezone, inputs, version, name, allow_overlap, catchup)
        return _parse(self._send(call), ScheduleInfo)

    def list_schedules(self) -> list[ScheduleInfo]:
        return _parse(self._send(_Call("GET", "/v1/schedules")), _SCHEDULE_LIST)

    def get_schedule(self, schedule_id: str) -> ScheduleInfo:
        return _parse(self._send(_Call("GET", f"/v1/schedules/{schedule_id}")), ScheduleInfo)

    def set_schedule_enabled(self, schedule_id: str, enabled: bool) -> ScheduleInfo:
        """Pause (`False`) or resume (`True`) a schedule; resumed, it fires from its next time after now."""
        call = _Call("PATCH", f"/v1/schedules/{schedule_id}", body={"enabled": enabled})
        return _parse(self._send(call), ScheduleInfo)

    def delete_schedule(self, schedule_id: str) -> None:
        _raise_for(self._send(_Call("DELETE", f"/v1/schedules/{schedule_id}")))


# -- the async client --------------------------------------------------------------------


class AsyncClient:
    """The asyncio twin of `Client`: the same methods, awaited (`events` is an async iterator)."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        url, headers = _settings(base_url, api_key)
        self._http = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, transport=transport)
        self._poll = max(0.0, min(_LONG_POLL, timeout - 2))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, call: _Call) -> httpx.Response:
        return await self._http.request(call.method, call.path, params=call.params, json=call.body,
                                        headers=call.headers, content=call.content, timeout=call.timeout_option)

    async def health(self) -> Health:
        return _parse(await self._send(_Call("GET", "/healthz")), Health)

    async def metrics(self) -> str:
        response = await self._send(_Call("GET", "/metrics"))
        _raise_for(response)
        return response.text

    async def nodes(self) -> list[NodeTypeInfo]:
        return _parse(await self._send(_Call("GET", "/v1/nodes")), NodeCatalogResponse).nodes

    async def node(self, node_type: str) -> NodeTypeInfo:
        return _parse(await self._send(_Call("GET", f"/v1/nodes/{node_type}")), NodeTypeInfo)

    async def create_graph(self, graph: Graph | Mapping[str, Any] | str, tags: Iterable[str] = ()) -> GraphInfo:
        body = GraphCreate(graph=_graph_json(graph), tags=list(tags)).model_dump()
        return _parse(await self._send(_Call("POST", "/v1/graphs", body=body)), GraphInfo)

    async def list_graphs(self, name: str | None = None, tag: str | None = None, limit: int = 50,
                          offset: int = 0) -> GraphPage:
        params = _drop_none({"name": name, "tag": tag, "limit": limit, "offset": offset})
        return _parse(await self._send(_Call("GET", "/v1/graphs", params=params)), GraphPage)

    async def get_graph(self, graph_id: str, version: int | None = None) -> GraphInfo:
        call = _Call("GET", f"/v1/graphs/{graph_id}", params=_drop_none({"version": version}))
        return _parse(await self._send(call), GraphInfo)

    async def graph_versions(self, graph_id: str) -> list[GraphVersionInfo]:
        return _parse(await self._send(_Call("GET", f"/v1/graphs/{graph_id}/versions")), _VERSION_LIST)

    async def update_graph(self, graph_id: str, graph: Graph | Mapping[str, Any] | str | None = None,
                           tags: Iterable[str] | None = None) -> GraphInfo:
        body = GraphUpdate(graph=None if graph is None else _graph_json(graph),
                           tags=None if tags is None else list(tags)).model_dump(exclude_none=True)
        return _parse(await self._send(_Call("PUT", f"/v1/graphs/{graph_id}", body=body)), GraphInfo)

    async def delete_graph(self, graph_id: str) -> None:
        _raise_for(await self._send(_Call("DELETE", f"/v1/graphs/{graph_id}")))

    async def submit(self, graph: Graph | Mapping[str, Any] | str | None = None,
                     inputs: Mapping[str, Any] | None = None, *, graph_id: str | None = None,
                     version: int | None = None, use_cache: bool = True,
                     idempotency_key: str | None = None) -> RunInfo:
        call = _submit_call(graph, inputs, graph_id, version, use_cache, idempotency_key)
        return _parse(await self._send(call), RunInfo)

    async def preview(self, graph: Graph | Mapping[str, Any] | str | None = None,
                      inputs: Mapping[str, Any] | None = None, *, graph_id: str | None = None,
                      version: int | None = None, use_cache: bool = True) -> RunPreview:
        call = _submit_call(graph, inputs, graph_id, version, use_cache, None)
        call.params["dry_run"] = "true"
        return _parse(await self._send(call), RunPreview)

    async def get_run(self, run_id: str) -> RunInfo:
        return _parse(await self._send(_Call("GET", f"/v1/runs/{run_id}")), RunInfo)

    async def list_runs(self, graph_id: str | None = None, status: RunState | str | None = None,
                        since: datetime | float | None = None, until: datetime | float | None = None,
                        limit: int = 50, offset: int = 0) -> RunPage:
        return _parse(await self._send(_list_runs_call(graph_id, status, since, until, limit, offset)), RunPage)

    async def cancel(self, run_id: str) -> RunInfo:
        return _parse(await self._send(_Call("POST", f"/v1/runs/{run_id}/cancel")), RunInfo)

    async def resume(self, run_id: str) -> RunInfo:
        return _parse(await self._send(_Call("POST", f"/v1/runs/{run_id}/resume")), RunInfo)

    async def retry(self, run_id: str, *, version: int | None = None) -> RunRetried:
        return _parse(await self._send(_retry_call(run_id, version)), RunRetried)

    async def approve(self, run_id: str, node: str, *, value: Any = _AS_IS, reason: str | None = None) -> RunInfo:
        return _parse(await self._send(_approval_call(run_id, node, "approve", reason, value)), RunInfo)

    async def reject(self, run_id: str, node: str, reason: str) -> RunInfo:
        return _parse(await self._send(_approval_call(run_id, node, "reject", reason, _AS_IS)), RunInfo)

    async def wait(self, run_id: str, timeout: float | None = None) -> RunInfo:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = self._poll if deadline is None else min(self._poll, max(deadline - time.monotonic(), 0))
            run = _parse(await self._send(_wait_call(run_id, remaining)), RunInfo)
            if run.status.terminal or run.status in (RunState.INTERRUPTED, RunState.WAITING):
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise RunTimeoutError(f"run {run_id} is still {run.status.value} after {timeout} s", run_id=run_id,
                                      timeout=timeout)

    async def run(self, graph: Graph | Mapping[str, Any] | str, inputs: Mapping[str, Any] | None = None,
                  timeout: float | None = None) -> RunInfo:
        return await self.wait((await self.submit(graph, inputs)).id, timeout)

    async def events(self, run_id: str, after: int = 0, *, reconnect: int = 3) -> AsyncIterator[RunEventInfo]:
        parser = _SseParser(after)
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(parser.last_id)} if parser.last_id else {}
            try:
                async with self._http.stream("GET", f"/v1/runs/{run_id}/events", headers=headers,
                                             timeout=httpx.Timeout(30.0, read=None)) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        _raise_for(response)
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            failures = 0
                            yield event
                            if _is_finished(event):
                                return
                return
            except httpx.TransportError:
                failures += 1
                if failures > reconnect:
                    raise
                await asyncio.sleep(0.2 * failures)

    async def upload_artifact(self, data: bytes | str | os.PathLike[str],
                              media_type: str | None = None) -> dict[str, Any]:
        return _artifact_ref(await self._send(_upload_call(data, media_type)))

    async def download_artifact(self, run_id: str, artifact: str | Mapping[str, Any]) -> bytes:
        digest = artifact if isinstance(artifact, str) else str(artifact["$artifact"])
        response = await self._send(_Call("GET", f"/v1/runs/{run_id}/artifacts/{digest.removeprefix('sha256:')}"))
        _raise_for(response)
        return response.content

    async def download_outputs(self, run_id: str, folder: str | os.PathLike[str]) -> dict[str, Path]:
        run = await self.get_run(run_id)
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        for path, ref in _artifacts(run.outputs):
            file = target / _artifact_name(path, ref)
            file.write_bytes(await self.download_artifact(run_id, ref))
            written[path] = file
        (target / "outputs.json").write_text(json.dumps(run.outputs, indent=2, ensure_ascii=False))
        written["outputs.json"] = target / "outputs.json"
        return written

    async def draft(self, text: str, max_repairs: int | None = None, timeout: float = 300.0,
                    base: Mapping[str, Any] | None = None) -> DraftResponse:
        return _parse(await self._send(_draft_call(text, max_repairs, timeout, base)), DraftResponse)

    async def create_key(self, scopes: Iterable[Scope | str], name: str = "") -> KeyCreated:
        body = KeyCreate(scopes=[Scope(s) for s in scopes], name=name).model_dump(mode="json")
        return _parse(await self._send(_Call("POST", "/v1/keys", body=body)), KeyCreated)

    async def list_keys(self) -> list[KeyInfo]:
        return _parse(await self._send(_Call("GET", "/v1/keys")), _KEY_LIST)

    async def revoke_key(self, key_id: str) -> None:
        _raise_for(await self._send(_Call("DELETE", f"/v1/keys/{key_id}")))

    async def create_trigger(self, graph_id: str, *, version: int | None = None, name: str = "",
                             input_map: Mapping[str, str] | None = None) -> TriggerCreated:
        return _parse(await self._send(_trigger_call(graph_id, version, name, input_map)), TriggerCreated)

    async def list_triggers(self) -> list[TriggerInfo]:
        return _parse(await self._send(_Call("GET", "/v1/triggers")), _TRIGGER_LIST)

    async def delete_trigger(self, trigger_id: str) -> None:
        _raise_for(await self._send(_Call("DELETE", f"/v1/triggers/{trigger_id}")))

    async def deliver(self, trigger_id: str, secret: str, payload: Any, delivery_id: str | None = None) -> TriggerFired:
        return _parse(await self._send(_deliver_call(trigger_id, secret, payload, delivery_id)), TriggerFired)

    async def create_schedule(self, graph_id: str, cron: str, *, timezone: str = "UTC",
                              inputs: Mapping[str, Any] | None = None, version: int | None = None, name: str = "",
                              allow_overlap: bool = False, catchup: CatchUp | str = CatchUp.LATEST) -> ScheduleInfo:
        call = _schedule_call(graph_id, cron, timezone, inputs, version, name, allow_overlap, catchup)
        return _parse(await self._send(call), ScheduleInfo)

    async def list_schedules(self) -> list[ScheduleInfo]:
        return _parse(await self._send(_Call("GET", "/v1/schedules")), _SCHEDULE_LIST)

    async def get_schedule(self, schedule_id: str) -> ScheduleInfo:
        return _parse(await self._send(_Call("GET", f"/v1/schedules/{schedule_id}")), ScheduleInfo)

    async def set_schedule_enabled(self, schedule_id: str, enabled: bool) -> ScheduleInfo:
        call = _Call("PATCH", f"/v1/schedules/{schedule_id}", body={"enabled": enabled})
        return _parse(await self._send(call), ScheduleInfo)

    async def delete_schedule(self, schedule_id: str) -> None:
        _raise_for(await self._send(_Call("DELETE", f"/v1/schedules/{schedule_id}")))


__all__ = ["ApiClientError", "AsyncClient", "Client"]
