"""HTTP nodes: `http.request` for calling web APIs and `webhook.post` for notifying one.

Every connection goes through the address policy of `addresses.py`: public addresses
only unless the run allows private networks, checked again on each redirect hop, and the
connection made to the address that was checked. Proxy settings from the environment are
ignored for the same reason (a proxy would hide the real destination from the check).

Secrets: a header value or the body may say `${NODELOOM_SECRET_<NAME>}`, replaced by that
environment variable when the request is sent, so API keys stay out of graph files, cache
keys and run records. Only variables named `NODELOOM_SECRET_*` are read: a shared graph
cannot send itself any other variable of the machine. `NODELOOM_SECRET_<NAME>_HOSTS` binds
a secret to the hosts it may be sent to (exact names or `*.suffix`); a bound secret goes
nowhere else. A secret never becomes part of a URL's host (where a DNS query would carry
it off before any check), and goes into a path or query only for a host it is bound to; a
URL that is one reference alone (a secret webhook URL) goes to its own host. Every
spelling of an expanded value (any case, URL-encoded, JSON-escaped, base64) and values of
secret-looking headers (Authorization, Cookie, *-Key, *token*, ...) are masked in errors
and in the outputs, so an echoing server cannot store them in a run record;
secret-looking response headers are redacted from outputs. docs/security.md has the rules.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json as jsonlib
import os
import re
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import quote, quote_plus

import httpx

from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.ports import Pattern, Range
from nodeloom.core.spec import InputProblem, NodePreflight, RetryPolicy, node
from nodeloom.core.types import Json
from nodeloom.node_registry.http.addresses import (
    HOW_TO_ALLOW,
    Destination,
    DestinationRefused,
    display_url,
    host_matches,
    parse_url,
    redirect_destination,
    refusal_before_lookup,
    resolve_destination,
)

#: connection failures, timeouts and 5xx answers are worth a few more tries, spaced out
NETWORK_RETRY = RetryPolicy(max_attempts=3, initial_backoff=1.0, backoff_multiplier=2.0, max_backoff=10.0, jitter=0.2)
MAX_REDIRECTS = 10
#: a response body larger than this fails the node instead of filling the memory
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
EXCERPT_CHARS = 200
#: statuses that mean "try again later" although they are not 5xx
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})
URL_PATTERN = Pattern(r"(?i)(https?://|\$\{NODELOOM_SECRET_)\S+")

_SECRET_HEADER = re.compile(
    r"(?i)^(authorization|proxy-authorization|cookie|set-cookie)$|-key$|token|secret|password|api-?key|session"
)
_SECRET_REFERENCE = re.compile(r"\$\{(NODELOOM_SECRET_[A-Z0-9_]+)\}")
#: a URL's scheme and authority (user info, host, port): no secret is ever expanded there
_URL_HEAD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")
_REDACTED = "<redacted>"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_HEADERS = {"User-Agent": "nodeloom", "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}

_ssl_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_ssl_lock = threading.Lock()


def is_secret_header(name: str) -> bool:
    """Whether a header's value is a credential that must never be shown."""
    return bool(_SECRET_HEADER.search(name))


def _verified_ssl_context() -> ssl.SSLContext:
    """A certificate-verifying context, kept: loading the CA bundle takes a while.

    Trusts certifi's bundle, or the one `SSL_CERT_FILE` / `SSL_CERT_DIR` name (a company CA).
    """
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _ssl_lock:
        found = _ssl_contexts.get(key)
        if found is None:
            found = _ssl_contexts[key] = httpx.create_ssl_context()
    return found


class SecretRefused(NodeExecutionError):
    """A secret referenced where it may not go: in a URL's host, or for a host it is not bound to."""

    code = "secret_refused"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, retryable=False, details=details)


def bound_hosts(variable: str) -> tuple[str, ...] | None:
    """The hosts `<variable>_HOSTS` binds a secret to (comma-separated, exact or `*.suffix`),
    or None when that variable is not set."""
    listed = os.environ.get(f"{variable}_HOSTS")
    if listed is None:
        return None
    return tuple(host.strip() for host in listed.split(",") if host.strip())


def _base64_cores(raw: bytes) -> set[str]:
    """The base64 text `raw` becomes inside any longer encoded value (`user:secret` in Basic
    auth), at each of the three byte alignments: only groups made of `raw`'s bytes alone."""
    cores: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        cores.add(encode(raw).decode("ascii"))
        for offset in range(3):
            encoded = encode(b"\0" * offset + raw).decode("ascii")
            core = encoded[4 * (1 if offset else 0) : 4 * ((offset + len(raw)) // 3)]
            if len(core) >= 8:  # shorter runs of base64 would blot out ordinary text
                cores.add(core)
    return cores


def secret_spellings(value: str) -> set[str]:
    """The ways a value may come back from a server or a library: as is, URL-encoded,
    JSON-escaped, base64-encoded (letter case is ignored when they are matched)."""
    spellings = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        jsonlib.dumps(value)[1:-1],
        jsonlib.dumps(value, ensure_ascii=False)[1:-1],
    }
    return spellings | _base64_cores(value.encode("utf-8"))


class Secrets:
    """The secrets one request uses: which host they may go to, and how to keep them out of
    its errors and outputs.

    `expand` reads `${NODELOOM_SECRET_*}` references from the environment, refusing one whose
    `NODELOOM_SECRET_<NAME>_HOSTS` does not list `host`; `clean` replaces every secret value
    met so far (expanded ones, and values of secret-looking headers) in each of its spellings,
    whichever library or server wrote them.
    """

    def __init__(self) -> None:
        #: the host of the request, known once its URL is; secrets are checked against it
        self.host: str | None = None
        self._masks: list[tuple[int, re.Pattern[str], str]] = []

    def hide(self, value: str, shown_as: str = _REDACTED) -> None:
        if len(value) < 4:  # shorter values would blot out ordinary words
            return
        spellings = sorted(secret_spellings(value), key=len, reverse=True)
        pattern = re.compile("|".join(map(re.escape, spellings)), re.IGNORECASE)
        self._masks.append((len(value), pattern, shown_as))
        self._masks.sort(key=lambda mask: mask[0], reverse=True)  # a longer secret before its parts

    def check_bound(self, variable: str, where: str, *, required: bool) -> None:
        """Refuse `variable` for this request's host unless its binding lists the host; an
        unbound secret passes unless `required` (a secret in a URL's path or query)."""
        hosts = bound_hosts(variable)
        if hosts is None and not required:
            return
        assert self.host is not None, "the request's host is known before any secret is expanded"
        if hosts is not None and host_matches(self.host, hosts):
            return
        raise SecretRefused(
            f"{where} refers to ${{{variable}}}, which is not bound to host {self.host!r}; "
            f"to send it there, list the host in {variable}_HOSTS (comma-separated, exact or '*.suffix')",
            details={"variable": variable, "host": self.host},
        )

    def expand(
        self, text: str, where: str, *, required: bool = False, escape: Callable[[str], str] | None = None
    ) -> str:
        """`text` with its references replaced by their values (passed through `escape`)."""

        def substitute(match: re.Match[str]) -> str:
            variable = match.group(1)
            if self.host is not None:
                self.check_bound(variable, where, required=required)
            found = os.environ.get(variable)
            if found is None:  # name only the reference the graph wrote, never the secrets that exist
                raise NodeExecutionError(
                    f"{where} refers to ${{{variable}}}, but no such secret is set",
                    retryable=False,
                    details={"variable": variable},
                )
            self.hide(found, match.group(0))
            return escape(found) if escape is not None else found

        return _SECRET_REFERENCE.sub(substitute, text)

    def clean(self, text: str) -> str:
        for _, pattern, shown_as in self._masks:
            text = pattern.sub(shown_as.replace("\\", "\\\\"), text)  # the shown text, taken literally
        return text

    def clean_value(self, value: Any) -> Any:
        """A JSON-like value with `clean` applied to every string in it, keys included."""
        if isinstance(value, str):
            return self.clean(value)
        if isinstance(value, dict):
            return {self.clean_value(key): self.clean_value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.clean_value(item) for item in value]
        return value

    def keep_out_of(self, error: NodeExecutionError) -> NodeExecutionError:
        error.message = self.clean(error.message)
        error.args = (error.message,)
        error.details = {key: self.clean_value(value) for key, value in error.details.items()}
        return error


def request_headers(headers: Mapping[str, Any] | None, secrets: Secrets) -> tuple[dict[str, str], frozenset[str]]:
    """Check the headers given to a node and expand their `${NODELOOM_SECRET_*}` references.

    Returns the headers and the names of those that carry a secret. Errors name the header,
    never its value; secret values are registered with `secrets`.
    """
    checked: dict[str, str] = {}
    carrying: set[str] = set()
    for name, value in (headers or {}).items():
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise NodeExecutionError(f"{name!r} is not a valid header name", retryable=False)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise NodeExecutionError(
                f"header {name!r} must be a string (or a number), not a {type(value).__name__}", retryable=False
            )
        text = secrets.expand(str(value), f"header {name!r}")
        if text != str(value):
            carrying.add(name.lower())
        if is_secret_header(name):
            secrets.hide(text)
        if any(char in text for char in "\r\n\0"):
            raise NodeExecutionError(f"header {name!r} contains a line break or NUL character", retryable=False)
        checked[name] = text
    return checked, frozenset(carrying)


def response_headers(headers: httpx.Headers) -> dict[str, str]:
    """Response headers by lower-case name, secret-looking values (Set-Cookie, ...) redacted."""
    return {name: (_REDACTED if is_secret_header(name) else value) for name, value in headers.items()}


@dataclass(frozen=True, slots=True)
class Reply:
    """A received response, its body read in full."""

    status: int
    headers: httpx.Headers
    body: bytes
    encoding: str
    url: httpx.URL

    @property
    def text(self) -> str:
        try:
            return self.body.decode(self.encoding, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", errors="replace")

    def excerpt(self) -> str:
        flat = " ".join(self.text.split())
        return flat if len(flat) <= EXCERPT_CHARS else flat[:EXCERPT_CHARS] + "…"


def status_error(method: str, reply: Reply) -> NodeExecutionError:
    """The failure for an unsuccessful status; retryable for 5xx, 408, 425 and 429."""
    retryable = reply.status >= 500 or reply.status in RETRYABLE_CLIENT_STATUSES
    reason = httpx.codes.get_reason_phrase(reply.status)
    excerpt = reply.excerpt()
    return NodeExecutionError(
        f"{method} {display_url(reply.url)} answered {reply.status} {reason}".rstrip()
        + (f": {excerpt}" if excerpt else ""),
        retryable=retryable,
        details={"status": reply.status, "url": display_url(reply.url), "body_excerpt": excerpt},
    )


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port or 0) == (b.scheme, b.host, b.port or 0)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _send_pinned(
    transport: httpx.AsyncBaseTransport,
    method: str,
    destination: Destination,
    headers: Mapping[str, str],
    content: bytes | None,
    timeout: float,
) -> Reply:
    """Send to the checked addresses themselves (in order, until one connects), never to a
    fresh DNS answer; the Host header and TLS name stay those of the URL.

    Straight to the transport, not through `httpx.AsyncClient`: the client logs each URL,
    query string (and the secrets some APIs put there) included, and reads proxy settings.
    """
    url = destination.url
    extensions: dict[str, Any] = {"timeout": httpx.Timeout(timeout).as_dict()}
    if url.scheme == "https" and not _is_ip_literal(url.host):
        extensions["sni_hostname"] = url.host
    failure: httpx.ConnectError | None = None
    for address in destination.addresses:
        request = httpx.Request(
            method,
            url.copy_with(host=str(address)),
            headers={**_DEFAULT_HEADERS, **headers, "Host": url.netloc.decode("ascii")},
            content=content,
            extensions=extensions,
        )
        try:
            response = await transport.handle_async_request(request)
        except httpx.ConnectError as error:
            failure = error
            continue
        response.request = request
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise NodeExecutionError(
                        f"{method} {display_url(url)}: the response is larger than {MAX_RESPONSE_BYTES} bytes",
                        retryable=False,
                    )
        finally:
            await response.aclose()
        return Reply(response.status_code, response.headers, bytes(body), response.encoding or "utf-8", url)
    assert failure is not None  # a destination always has at least one address
    raise failure


def _redirected_headers(
    headers: dict[str, str],
    source: httpx.URL,
    target: httpx.URL,
    body_dropped: bool,
    carrying_secrets: frozenset[str] = frozenset(),
) -> dict[str, str]:
    kept = dict(headers)
    if not _same_origin(source, target):  # credentials are for the origin they were written for
        kept = {
            name: value
            for name, value in kept.items()
            if not is_secret_header(name) and name.lower() not in carrying_secrets
        }
    if body_dropped:
        kept = {name: value for name, value in kept.items() if name.lower() not in ("content-type", "content-length")}
    return kept


async def exchange(
    method: str,
    url: str,
    *,
    allow_private: bool,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: float = 30.0,
    follow_redirects: bool = True,
    headers_carrying_secrets: frozenset[str] = frozenset(),
    content_carries_secrets: bool = False,
) -> Reply:
    """One HTTP exchange under the address policy, following redirects hop by hop.

    Headers named in `headers_carrying_secrets` are dropped, like credentials, on a redirect
    to another origin; a body that carries a secret is never re-sent to another origin.

    Raises `NodeExecutionError`: not retryable for a refused destination or a malformed
    request, retryable for timeouts and connection failures.
    """
    sent_headers = dict(headers or {})
    target = parse_url(url)
    try:
        async with asyncio.timeout(timeout), httpx.AsyncHTTPTransport(verify=_verified_ssl_context()) as transport:
            destination = await asyncio.to_thread(resolve_destination, target, allow_private=allow_private)
            for _ in range(MAX_REDIRECTS + 1):
                reply = await _send_pinned(transport, method, destination, sent_headers, content, timeout)
                location = reply.headers.get("location")
                if not follow_redirects or reply.status not in _REDIRECT_STATUSES or location is None:
                    return reply
                source = destination.url
                destination = await asyncio.to_thread(
                    redirect_destination, source, location, allow_private=allow_private
                )
                # 303 always, and 301/302 after a POST, continue as GET without a body (as browsers do)
                if method != "HEAD" and (reply.status == 303 or (reply.status in (301, 302) and method == "POST")):
                    method, content = "GET", None
                if content is not None and content_carries_secrets and not _same_origin(source, destination.url):
                    raise SecretRefused(
                        f"redirect from {display_url(source)} to another origin refused: "
                        "it would re-send a request body that carries a secret",
                        details={"url": display_url(source), "status": reply.status},
                    )
                sent_headers = _redirected_headers(
                    sent_headers, source, destination.url, content is None, headers_carrying_secrets
                )
            raise NodeExecutionError(
                f"{display_url(target)}: more than {MAX_REDIRECTS} redirects", retryable=False
            )
    except TimeoutError:
        raise NodeExecutionError(
            f"{method} {display_url(target)}: no complete response within {timeout:g} s",
            details={"url": display_url(target), "timeout": timeout},
        ) from None
    except httpx.TimeoutException:
        raise NodeExecutionError(
            f"{method} {display_url(target)}: no complete response within {timeout:g} s",
            details={"url": display_url(target), "timeout": timeout},
        ) from None
    except httpx.TransportError as error:
        kind = type(error).__name__
        if _caused_by(error, ssl.SSLCertVerificationError):
            raise NodeExecutionError(
                f"{method} {display_url(target)}: the server's TLS certificate is not valid for this host: "
                f"{error}",
                retryable=False,
                details={"url": display_url(target), "exception": "SSLCertVerificationError"},
            ) from None
        raise NodeExecutionError(
            f"{method} {display_url(target)} failed: {kind}: {error}",
            retryable=not isinstance(error, httpx.UnsupportedProtocol | httpx.LocalProtocolError),
            details={"url": display_url(target), "exception": kind},
        ) from None
    except httpx.HTTPError as error:
        raise NodeExecutionError(
            f"{method} {display_url(target)} failed: {error}", retryable=False
        ) from None


class HttpResponse(NamedTuple):
    status: Annotated[int, "the HTTP status code of the final response"]
    headers: Annotated[dict[str, Any], "response headers by lower-case name (Set-Cookie and the like redacted)"]
    text: Annotated[str, "the body decoded as text"]
    json: Annotated[Any, Json, "the body parsed as JSON, or null when it is not JSON"]


def _parse_json(text: str) -> Any:
    try:
        return jsonlib.loads(text)
    except ValueError:
        return None


def _request_url(url: str, secrets: Secrets) -> str:
    """The URL with its secrets expanded, once `secrets.host` is set to its host.

    A URL that is one reference alone is a secret URL (a webhook's): it goes to its own
    host, and only to a bound one if the secret is bound. Otherwise no secret may stand in
    the scheme or authority, so none reaches a DNS query or names a destination, and one in
    the path or query must be bound to the URL's host. Both refusals come before any lookup.
    """
    whole = _SECRET_REFERENCE.fullmatch(url)
    if whole is not None:
        expanded = secrets.expand(url, "url")
        try:
            target = parse_url(expanded)
        except DestinationRefused:
            raise DestinationRefused(f"url: {url} is not an http or https URL with a host") from None
        secrets.host = target.host
        secrets.hide(display_url(target), url)  # errors show the URL as written
        secrets.check_bound(whole.group(1), "url", required=False)
        return expanded
    head = _URL_HEAD.match(url)
    if _SECRET_REFERENCE.search(url[: head.end()] if head is not None else url):
        raise SecretRefused(
            "url: a secret cannot be part of the URL's scheme, host, port or user info; send it in a "
            "header or the body, or in the path or query of a URL whose host it is bound to"
        )
    secrets.host = parse_url(url).host
    expanded = secrets.expand(url, "url", required=True)
    if parse_url(expanded).host != secrets.host:  # cannot happen after the authority, kept as a guard
        raise SecretRefused("url: a secret would change the URL's host")
    return expanded


async def send_request(
    ctx: NodeContext,
    method: str,
    url: str,
    *,
    headers: Mapping[str, Any] | None,
    content: str | None,
    content_type: str | None,
    timeout: float,
    follow_redirects: bool,
    accept: Callable[[int], bool],
) -> tuple[Reply, Secrets]:
    """What both nodes do: expand secrets where they may go, exchange under the run's address
    policy, fail on a status `accept` refuses, and keep every secret value out of the error.

    `content` is the body as text; its references are expanded JSON-escaped when
    `content_type` is JSON. Returns the reply and the secrets, to clean the outputs with.
    """
    secrets = Secrets()
    try:
        expanded_url = _request_url(url, secrets)
        sent, carrying = request_headers(headers, secrets)
        if content_type is not None and not any(name.lower() == "content-type" for name in sent):
            sent["Content-Type"] = content_type
        body: bytes | None = None
        body_carries_secrets = False
        if content is not None:
            escape = _json_escaped if content_type == "application/json" else None
            expanded_body = secrets.expand(content, "body", escape=escape)
            body, body_carries_secrets = expanded_body.encode("utf-8"), expanded_body != content
        reply = await exchange(
            method,
            expanded_url,
            allow_private=ctx.config.allow_private_network,
            headers=sent,
            content=body,
            timeout=timeout,
            follow_redirects=follow_redirects,
            headers_carrying_secrets=carrying,
            content_carries_secrets=body_carries_secrets,
        )
        if not accept(reply.status):
            raise status_error(method, reply)
        return reply, secrets
    except NodeExecutionError as error:
        secrets.keep_out_of(error)
        raise


def _json_escaped(value: str) -> str:
    """`value` as it stands inside a JSON string, where a body's references are."""
    return jsonlib.dumps(value, ensure_ascii=False)[1:-1]


SECRET_NOTE = "'${NODELOOM_SECRET_X}' in it is read from that environment variable"
URL_SECRET_NOTE = (
    "'${NODELOOM_SECRET_X}' as the whole URL, or in its path or query for a host NODELOOM_SECRET_X_HOSTS lists, "
    "is read from that environment variable (never in the host)"
)


def destination_preflight(use: NodePreflight) -> list[InputProblem]:
    """Before the run: a literal URL (or one from a graph input) the run's policy refuses.

    A URL with a secret reference is left to the run (the secret is read when the node runs),
    and a host name is not looked up (see `refusal_before_lookup`)."""
    url = use.inputs.get("url")
    if not isinstance(url, str) or _SECRET_REFERENCE.search(url):
        return []
    refused = refusal_before_lookup(url, allow_private=use.config.allow_private_network)
    if refused is None:
        return []
    hint = HOW_TO_ALLOW if refused.details.get("reason") else None
    return [InputProblem("destination_refused", refused.message, port="url", hint=hint)]


@node("http.request", resources="io", deterministic=False, retry=NETWORK_RETRY, preflight=destination_preflight)
async def http_request(
    ctx: NodeContext,
    url: Annotated[str, URL_PATTERN, f"an http or https URL; {URL_SECRET_NOTE}"],
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET",
    headers: Annotated[dict[str, Any], f"request headers; {SECRET_NOTE}"] | None = None,
    json: Annotated[Any, Json, f"a JSON body (sets Content-Type: application/json); {SECRET_NOTE}"] = None,
    body: Annotated[str, f"a text body, instead of a JSON one; {SECRET_NOTE}"] | None = None,
    timeout: Annotated[float, Range(0.1, 600), "seconds for the whole exchange, redirects included"] = 30.0,
    follow_redirects: Annotated[bool, "follow 3xx redirects (each hop is checked like the first)"] = True,
    fail_on_error: Annotated[bool, "fail on a status >= 400 (5xx, 408 and 429 are retried)"] = True,
) -> HttpResponse:
    """Send an HTTP request to a public address and return the status, headers and body."""
    if json is not None and body is not None:
        raise NodeExecutionError("give either a json body or a text body, not both", retryable=False)
    content = jsonlib.dumps(json, ensure_ascii=False) if json is not None else body
    reply, secrets = await send_request(
        ctx,
        method,
        url,
        headers=headers,
        content=content,
        content_type="application/json" if json is not None else None,
        timeout=timeout,
        follow_redirects=follow_redirects,
        accept=lambda status: status < 400 or not fail_on_error,
    )
    text = reply.text  # a server that echoes a secret back does not get it into the outputs
    return HttpResponse(
        reply.status,
        secrets.clean_value(response_headers(reply.headers)),
        secrets.clean(text),
        secrets.clean_value(_parse_json(text)),
    )
