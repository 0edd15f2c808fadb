"""The tools pack against a real HTTP server on 127.0.0.1 started by the tests, and a real
output folder: http.request, webhook.post and file.save, run through the local executor.

Refused destinations are asserted on the error and on the test server's request count;
no test sends traffic anywhere but 127.0.0.1 (non-loopback addresses are only resolved,
which for IP literals needs no network at all).
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import trustme
from netutil import RecordingHandler, ServerLog, recording_server
from single_node import error_of, run_node

from nodeloom.core import RunConfig, RunResult
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry import NodeRegistry

HTTP_OUTPUTS = ("status", "headers", "text", "json")
FAST_RETRY = {"max_attempts": 3, "initial_backoff": 0.01, "jitter": 0.0}


def _route(handler: RecordingHandler, body: bytes, seen: int) -> None:
    split = urlsplit(handler.path)
    parts = split.path.strip("/").split("/")
    query = parse_qs(split.query)
    if parts[0] == "json":
        handler.reply_json(200, {"hello": "world", "n": 3}, {"Set-Cookie": "session=abc123", "X-Plain": "yes"})
    elif parts[0] == "echo":
        text = body.decode()
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        handler.reply_json(200, {"method": handler.command, "body": parsed, "headers": dict(handler.headers.items())})
    elif parts[0] == "text":
        handler.reply(200, b"plain words", "text/plain; charset=utf-8")
    elif parts[0] == "status":
        handler.reply(int(parts[1]), f"status {parts[1]} from the server".encode(), "text/plain")
    elif parts[0] == "flaky":  # /flaky/<name>/<failures>: 503 for the first <failures> requests
        if seen <= int(parts[2]):
            handler.reply(503, b"busy, try later", "text/plain")
        else:
            handler.reply_json(200, {"ok": True, "requests": seen})
    elif parts[0] == "redirect":
        handler.reply(int(query.get("code", ["302"])[0]), b"", "text/plain", {"Location": query["to"][0]})
    elif parts[0] == "slow":
        handler.state.release.wait(5)
        handler.reply(200, b"late", "text/plain")
    else:
        handler.reply(404, b"no such route", "text/plain")


@pytest.fixture
def server() -> Iterator[ServerLog]:
    with recording_server(_route) as state:
        yield state


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerLog]:
    """An HTTPS server on 127.0.0.1 with a certificate for the name 'localhost' only,
    from a test CA that the process trusts through SSL_CERT_FILE."""
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("localhost").configure_cert(context)
    with recording_server(_route, tls=context) as state:
        yield state


LOCAL = RunConfig(allow_private_network=True)


# -- http.request -----------------------------------------------------------------


def test_get_returns_status_headers_text_and_parsed_json(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/json"))
    assert result.ok, result.errors()
    assert result.outputs["status"] == 200
    assert result.outputs["json"] == {"hello": "world", "n": 3}
    assert json.loads(result.outputs["text"]) == {"hello": "world", "n": 3}
    assert result.outputs["headers"]["content-type"] == "application/json"
    assert result.outputs["headers"]["x-plain"] == "yes"


def test_response_cookies_are_redacted_from_the_outputs(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/json"))
    assert result.outputs["headers"]["set-cookie"] == "<redacted>"
    assert "abc123" not in json.dumps(result.to_json())


def test_post_sends_a_json_body_and_reads_the_json_answer(executor: LocalExecutor, server: ServerLog) -> None:
    payload = {"product": "tea", "scenes": [1, 2], "price": 4.5}
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/echo"), method="POST",
                      json=payload, headers={"X-Trace": "t-1"})
    assert result.ok, result.errors()
    echoed = result.outputs["json"]
    assert echoed["method"] == "POST" and echoed["body"] == payload
    assert echoed["headers"]["Content-Type"] == "application/json"
    assert echoed["headers"]["X-Trace"] == "t-1"
    assert echoed["headers"]["Host"] == f"127.0.0.1:{server.port}"


def test_text_body_is_sent_as_given(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/echo"), method="PUT",
                      body="line one\nline two")
    assert result.outputs["json"]["body"] == "line one\nline two"
    assert result.outputs["json"]["method"] == "PUT"


def test_a_body_that_is_not_json_gives_null_json(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/text"))
    assert result.outputs["text"] == "plain words"
    assert result.outputs["json"] is None


def test_redirects_are_followed_when_allowed(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/redirect?to=/json"))
    assert result.outputs["status"] == 200 and result.outputs["json"] == {"hello": "world", "n": 3}
    assert server.count("/redirect") == 1 and server.count("/json") == 1


def test_credentials_are_not_forwarded_to_another_origin(executor: LocalExecutor, server: ServerLog) -> None:
    elsewhere = f"http://localhost:{server.port}/echo"  # another host name: another origin
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url(f"/redirect?to={elsewhere}"),
                      headers={"Authorization": "Bearer abc", "X-Trace": "t-2"})
    sent = result.outputs["json"]["headers"]
    assert "Authorization" not in sent and sent["X-Trace"] == "t-2"
    assert sent["Host"] == f"localhost:{server.port}"


def test_https_is_verified_for_the_url_host_while_connecting_to_the_checked_address(
    executor: LocalExecutor, tls_server: ServerLog
) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=f"https://localhost:{tls_server.port}/json")
    assert result.ok, result.errors()
    assert result.outputs["json"] == {"hello": "world", "n": 3}


def test_a_certificate_for_another_name_fails_without_retries(executor: LocalExecutor, tls_server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, retry=FAST_RETRY,
                      url=f"https://127.0.0.1:{tls_server.port}/json")
    error = error_of(result)
    assert "TLS certificate is not valid for this host" in error["message"]
    assert result.nodes["n"].attempts == 1 and tls_server.requests == []


def test_see_other_turns_a_post_into_a_get_without_body(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, method="POST", json={"a": 1},
                      url=server.url("/redirect?code=303&to=/echo"))
    assert result.outputs["json"]["method"] == "GET" and result.outputs["json"]["body"] == ""


def test_redirects_are_returned_when_not_followed(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/redirect?to=/json"),
                      follow_redirects=False)
    assert result.outputs["status"] == 302 and result.outputs["headers"]["location"] == "/json"
    assert server.count("/json") == 0


def test_a_slow_server_fails_the_node_at_its_timeout(executor: LocalExecutor, server: ServerLog) -> None:
    started = time.monotonic()
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, retry={"max_attempts": 1},
                      url=server.url("/slow"), timeout=0.3)
    assert time.monotonic() - started < 3
    error = error_of(result)
    assert "no complete response within 0.3 s" in error["message"]


def test_server_errors_are_retried_until_they_pass(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, retry=FAST_RETRY,
                      url=server.url("/flaky/a/2"))
    assert result.ok, result.errors()
    assert result.outputs["json"] == {"ok": True, "requests": 3}
    assert result.nodes["n"].attempts == 3


def test_a_server_error_that_persists_fails_after_the_last_attempt(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, retry=FAST_RETRY, url=server.url("/status/503"))
    error = error_of(result)
    assert server.count("/status/503") == 3
    assert error["status"] == 503 and "503 Service Unavailable: status 503 from the server" in error["message"]


def test_client_errors_are_not_retried(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, retry=FAST_RETRY, url=server.url("/status/404"))
    error = error_of(result)
    assert server.count("/status/404") == 1 and result.nodes["n"].attempts == 1
    assert error["status"] == 404 and error["body_excerpt"] == "status 404 from the server"


def test_client_errors_are_outputs_when_fail_on_error_is_off(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/status/404"),
                      fail_on_error=False)
    assert result.ok and result.outputs["status"] == 404 and result.outputs["text"] == "status 404 from the server"


def test_the_default_retry_policy_retries_transient_failures(registry: NodeRegistry) -> None:
    policy = registry.get("http.request").spec.retry
    assert (policy.max_attempts, policy.initial_backoff, policy.backoff_multiplier, policy.max_backoff,
            policy.jitter) == (3, 1.0, 2.0, 10.0, 0.2)


# -- secrets ----------------------------------------------------------------------


def test_secret_header_references_are_read_from_the_environment(
    executor: LocalExecutor, server: ServerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_SECRET_TEST_TOKEN", "tok-from-env")
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/echo"),
                      headers={"Authorization": "Bearer ${NODELOOM_SECRET_TEST_TOKEN}"})
    assert server.requests[0].headers["Authorization"] == "Bearer tok-from-env"
    assert result.ok and "tok-from-env" not in json.dumps(result.outputs)  # the echo is masked


def test_other_environment_variables_are_not_expanded(
    executor: LocalExecutor, server: ServerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME_SECRET", "must-not-leak")
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/echo"),
                      headers={"X-Value": "${HOME_SECRET}"})
    assert result.outputs["json"]["headers"]["X-Value"] == "${HOME_SECRET}"


def test_a_missing_secret_variable_fails_naming_the_variable(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/json"),
                      headers={"X-Api-Key": "${NODELOOM_SECRET_NOT_SET_ANYWHERE}"})
    assert "NODELOOM_SECRET_NOT_SET_ANYWHERE" in error_of(result)["message"]
    assert server.requests == []


def test_secret_headers_appear_in_no_error_or_log(
    executor: LocalExecutor, server: ServerLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = {"Authorization": "Bearer sk-top-secret-1", "Cookie": "sid=sk-top-secret-2",
               "X-Api-Key": "sk-top-secret-3", "X-Auth-Token": "sk-top-secret-4"}
    with_credentials = f"http://user:sk-top-secret-5@127.0.0.1:{server.port}/x?token=sk-top-secret-6"
    refused = run_node(executor, "http.request", HTTP_OUTPUTS, url=with_credentials, headers=secrets)
    failed = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, retry={"max_attempts": 1},
                      url=server.url("/status/500") + "?api_key=sk-top-secret-7", headers=secrets)
    records = json.dumps([refused.to_json(), failed.to_json(), refused.errors(), failed.errors()])
    assert error_of(refused)["code"] == "destination_refused" and error_of(failed)["status"] == 500
    assert "sk-top-secret" not in records
    assert "sk-top-secret" not in caplog.text


def test_headers_with_line_breaks_are_refused_without_echoing_them(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/json"),
                      headers={"X-Token": "abc\r\nX-Injected: 1"})
    error = error_of(result)
    assert "'X-Token' contains a line break" in error["message"] and "abc" not in error["message"]
    assert server.requests == []


# -- webhook.post -----------------------------------------------------------------


def test_webhook_delivers_the_json_payload(executor: LocalExecutor, server: ServerLog) -> None:
    payload = {"event": "video.ready", "url": "https://cdn.example/v.mp4", "scenes": 4}
    result = run_node(executor, "webhook.post", ("status",), LOCAL, url=server.url("/echo"), payload=payload,
                      headers={"X-Signature": "sig-1"})
    assert result.ok and result.outputs["status"] == 200
    (received,) = server.requests
    assert received.method == "POST" and json.loads(received.body) == payload
    assert received.headers["Content-Type"] == "application/json" and received.headers["X-Signature"] == "sig-1"


def test_a_webhook_url_can_come_from_a_secret_variable(
    executor: LocalExecutor, server: ServerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_SECRET_HOOK", server.url("/echo"))
    result = run_node(executor, "webhook.post", ("status",), LOCAL, url="${NODELOOM_SECRET_HOOK}", payload={"a": 1})
    assert result.ok and server.count("/echo") == 1


def test_a_secret_webhook_url_is_not_shown_in_errors(
    executor: LocalExecutor, server: ServerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_SECRET_HOOK", server.url("/status/403/T0K3N-path"))
    result = run_node(executor, "webhook.post", ("status",), LOCAL, url="${NODELOOM_SECRET_HOOK}", payload={"a": 1})
    error = error_of(result)
    assert error["status"] == 403 and "${NODELOOM_SECRET_HOOK}" in error["message"]
    assert "T0K3N" not in json.dumps(result.to_json())


def test_webhook_fails_on_a_non_2xx_answer_with_its_status_and_excerpt(
    executor: LocalExecutor, server: ServerLog
) -> None:
    result = run_node(executor, "webhook.post", ("status",), LOCAL, url=server.url("/status/410"), payload={"a": 1})
    error = error_of(result)
    assert error["status"] == 410 and error["body_excerpt"] == "status 410 from the server"
    assert "410 Gone" in error["message"] and server.count("/status/410") == 1


def test_webhook_refuses_private_destinations_by_default(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "webhook.post", ("status",), url=server.url("/echo"), payload={"a": 1})
    assert error_of(result)["code"] == "destination_refused" and server.requests == []


def test_webhook_does_not_follow_redirects(executor: LocalExecutor, server: ServerLog) -> None:
    result = run_node(executor, "webhook.post", ("status",), LOCAL, url=server.url("/redirect?code=307&to=/echo"),
                      payload={"a": 1})
    assert error_of(result)["status"] == 307 and server.count("/echo") == 0


# -- file.save --------------------------------------------------------------------


def save(executor: LocalExecutor, out: Path | None, data: Any, filename: str) -> RunResult:
    return run_node(executor, "file.save", ("path",), RunConfig(out_dir=out), data=data, filename=filename)


def test_file_save_writes_text_into_the_output_folder(executor: LocalExecutor, tmp_path: Path) -> None:
    result = save(executor, tmp_path / "out", "A tea for every morning.", "script.txt")
    assert result.outputs == {"path": "script.txt"}
    assert (tmp_path / "out" / "script.txt").read_text(encoding="utf-8") == "A tea for every morning."


def test_file_save_writes_json_and_creates_sub_folders(executor: LocalExecutor, tmp_path: Path) -> None:
    storyboard = {"title": "Tea", "scenes": [{"caption": "Morning", "seconds": 2.5}]}
    result = save(executor, tmp_path / "out", storyboard, "story/board.json")
    assert result.outputs == {"path": "story/board.json"}
    assert json.loads((tmp_path / "out" / "story" / "board.json").read_text(encoding="utf-8")) == storyboard


def test_file_save_copies_an_artifact_byte_for_byte(executor: LocalExecutor, tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    ref = executor.artifacts.put_bytes(png, "image/png")
    result = save(executor, tmp_path / "out", ref.to_json(), "thumbs/scene_1.png")
    assert result.outputs == {"path": "thumbs/scene_1.png"}
    assert (tmp_path / "out" / "thumbs" / "scene_1.png").read_bytes() == png


def test_file_save_without_an_output_folder_says_how_to_set_one(executor: LocalExecutor) -> None:
    result = save(executor, None, "x", "a.txt")
    message = error_of(result)["message"]
    assert "no output folder" in message and "--out" in message and "RunConfig(out_dir=" in message


def test_http_exchange_is_never_proxied_from_the_environment(
    executor: LocalExecutor, server: ServerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a proxy would see the request instead of the checked destination
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL, url=server.url("/json"))
    assert result.ok and result.outputs["status"] == 200
