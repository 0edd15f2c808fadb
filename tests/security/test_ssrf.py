"""The HTTP nodes' address policy (the review's SSRF findings): every address form that reaches a
private, loopback, link-local or otherwise non-public host is refused before any connection, and
redirects are checked hop by hop. End-to-end cases run `http.request` against a real server on
127.0.0.1 and assert it received nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from netutil import RecordingHandler, ServerLog, recording_server
from single_node import error_of, run_node

from nodeloom.core import RunConfig
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry.http.addresses import (
    DestinationRefused,
    parse_url,
    redirect_destination,
    resolve_destination,
)

HTTP_OUTPUTS = ("status", "headers", "text", "json")
LOCAL = RunConfig(allow_private_network=True)


def _route(handler: RecordingHandler, body: bytes, seen: int) -> None:
    if handler.path.startswith("/redirect?to="):
        handler.reply(302, b"", "text/plain", {"Location": handler.path.removeprefix("/redirect?to=")})
    else:
        handler.reply_json(200, {"hello": "world"})


@pytest.fixture
def server() -> Iterator[ServerLog]:
    with recording_server(_route) as state:
        yield state


REFUSED_HOSTS = [
    ("127.0.0.1", "loopback"),
    ("localhost", "loopback"),
    ("[::1]", "loopback"),
    ("10.0.0.1", "private"),
    ("169.254.169.254", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("[::ffff:127.0.0.1]", "loopback"),
    ("2130706433", "loopback"),  # 127.0.0.1 as one decimal number
    ("0x7f.1", "loopback"),  # 127.0.0.1 in hex shorthand
    ("[fe80::1]", "link-local"),
    ("224.0.0.1", "multicast"),
    ("100.64.0.1", "non-public"),  # carrier-grade NAT
]


@pytest.mark.parametrize(("host", "reason"), REFUSED_HOSTS)
def test_private_destinations_are_refused_before_any_connection(
    executor: LocalExecutor, server: ServerLog, host: str, reason: str
) -> None:
    result = run_node(executor, "http.request", HTTP_OUTPUTS, url=f"http://{host}:{server.port}/json")
    error = error_of(result)
    assert error["code"] == "destination_refused"
    assert f"is a {reason} address" in error["message"]
    assert "--allow-private-network" in error["message"] and "RunConfig(allow_private_network=True)" in error["message"]
    assert error["host"] == host.strip("[]") and error["reason"] == reason
    assert result.nodes["n"].attempts == 1  # not retryable
    assert server.requests == []


def test_refusal_names_the_resolved_address() -> None:
    expected = r"host 'localhost' resolves to (127\.0\.0\.1|::1), which is a loopback"
    with pytest.raises(DestinationRefused, match=expected):
        resolve_destination(parse_url("http://localhost/"), allow_private=False)


def test_public_addresses_pass_the_check() -> None:
    # an IP literal: resolving it needs no network and nothing is sent
    destination = resolve_destination(parse_url("https://93.184.215.14/page"), allow_private=False)
    assert [str(a) for a in destination.addresses] == ["93.184.215.14"] and destination.port == 443


def test_private_addresses_pass_when_the_run_allows_them() -> None:
    destination = resolve_destination(parse_url("http://10.1.2.3:8080/"), allow_private=True)
    assert [str(a) for a in destination.addresses] == ["10.1.2.3"]


def test_a_redirect_to_a_private_address_is_refused() -> None:
    with pytest.raises(DestinationRefused, match=r"redirect from https://93\.184\.215\.14/start: .*169\.254\.169\.254"):
        redirect_destination(
            parse_url("https://93.184.215.14/start"), "http://169.254.169.254/latest/meta-data/", allow_private=False
        )


def test_a_relative_redirect_is_checked_against_the_current_host() -> None:
    destination = redirect_destination(parse_url("https://93.184.215.14/a/b"), "../c?x=1", allow_private=False)
    assert str(destination.url) == "https://93.184.215.14/c?x=1"


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://93.184.215.14/x", "gopher://93.184.215.14/"])
def test_a_redirect_to_another_scheme_is_refused(location: str) -> None:
    with pytest.raises(DestinationRefused, match="only http and https"):
        redirect_destination(parse_url("https://93.184.215.14/"), location, allow_private=True)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/", "http://"])
def test_only_http_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(DestinationRefused):
        parse_url(url)


def test_a_redirect_to_a_private_address_fails_the_node(executor: LocalExecutor, server: ServerLog) -> None:
    # end to end the first hop is loopback too, so the run must allow private networks; the
    # hop to the server's own address is allowed, the one after it is checked again
    result = run_node(executor, "http.request", HTTP_OUTPUTS, LOCAL,
                      url=server.url("/redirect?to=ftp://127.0.0.1/secret"))
    error = error_of(result)
    assert error["code"] == "destination_refused" and "only http and https" in error["message"]

