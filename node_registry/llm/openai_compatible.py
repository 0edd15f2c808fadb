"""The `openai` provider: any server that speaks OpenAI's chat completions API, over httpx.

Settings (run settings, then environment): `llm.base_url` or `$NODELOOM_OPENAI_BASE_URL`
(default `https://api.openai.com/v1`), `llm.model`, `llm.request_timeout` (seconds, default
120), `llm.max_attempts` (default 4). The API key comes only from `$NODELOOM_OPENAI_API_KEY`
or `$OPENAI_API_KEY`; it is sent in the Authorization header and nowhere else, and is
scrubbed from any server message quoted in an error.

429 and 5xx answers (and refused connections) are retried with exponential backoff, or after
the server's Retry-After; any other 4xx fails at once with the server's own message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.spec import RetryPolicy
from nodeloom.node_registry.llm.chat import ChatRequest, Completion, StreamObserver

log = logging.getLogger(__name__)

BASE_URL_ENV = "NODELOOM_OPENAI_BASE_URL"
API_KEY_ENVS = ("NODELOOM_OPENAI_API_KEY", "OPENAI_API_KEY")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 120.0
DEFAULT_ATTEMPTS = 4
#: the longest Retry-After honoured; a server asking for more is treated as this
MAX_RETRY_AFTER = 60.0
BACKOFF = RetryPolicy(max_attempts=DEFAULT_ATTEMPTS, initial_backoff=0.5, backoff_multiplier=2.0, max_backoff=8.0)
#: quoted server messages are cut to this many characters
MESSAGE_LIMIT = 1000

# Servers that answered a `json_schema` response format with 400/422 (older llama.cpp,
# many proxies) get `json_object` plus the schema from then on, without asking again.
_json_schema_refused: set[str] = set()
_json_schema_lock = threading.Lock()


def _setting(settings: Mapping[str, Any], key: str, env: str | None = None) -> str:
    value = settings.get(key)
    if value is None and env is not None:
        value = os.environ.get(env)
    return str(value).strip() if value is not None else ""


def _positive(settings: Mapping[str, Any], key: str, default: float, kind: type[int] | type[float]) -> Any:
    value = settings.get(key, default)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or value <= 0 or (kind is int and value != int(value)):
        whole = "whole " if kind is int else ""
        raise NodeExecutionError(f"the setting {key} must be a positive {whole}number, not {value!r}", retryable=False)
    return kind(value)


def _api_key() -> str | None:
    for name in API_KEY_ENVS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), or None."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _server_message(response: httpx.Response) -> str:
    """The error message in a server's answer: OpenAI's `{"error": {"message"}}`, FastAPI's `detail`, or the text."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    message: Any = None
    if isinstance(payload, dict):
        error = payload.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if message is None:
            message = payload.get("detail") or payload.get("message")
    if message is None:
        message = response.text.strip() or response.reason_phrase
    text = message if isinstance(message, str) else json.dumps(message)
    return text[:MESSAGE_LIMIT]


@dataclass
class _Refusal:
    """An answer or failure that did not produce a completion."""

    message: str
    status: int | None
    retryable: bool
    retry_after: float | None = None


class _FormatRefused(Exception):
    """The server refused the request's response format (not the request as such)."""

    def __init__(self, refusal: _Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def _refuses_json_schema(refusal: _Refusal) -> bool:
    """Whether an error answer refuses `response_format: json_schema`.

    OpenAI-style servers answer 400 or 422; llama-cpp-python's server reports the failed
    request validation as a 500 that names the field, so the message counts too.
    """
    if refusal.status in (400, 422):
        return True
    return refusal.status is not None and ("response_format" in refusal.message or "json_schema" in refusal.message)


class OpenAICompatibleProvider:
    """Chat completions from an OpenAI-compatible HTTP endpoint, streamed over server-sent events."""

    name = "openai"

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        model: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_ATTEMPTS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.backoff = RetryPolicy(
            max_attempts=max_attempts,
            initial_backoff=BACKOFF.initial_backoff,
            backoff_multiplier=BACKOFF.backoff_multiplier,
            max_backoff=BACKOFF.max_backoff,
        )
        self._api_key = _api_key()

    def __repr__(self) -> str:
        return f"OpenAICompatibleProvider({self.base_url!r}, model={self.model!r})"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> OpenAICompatibleProvider:
        return cls(
            _setting(settings, "llm.base_url", BASE_URL_ENV) or DEFAULT_BASE_URL,
            model=_setting(settings, "llm.model"),
            timeout=_positive(settings, "llm.request_timeout", DEFAULT_TIMEOUT, float),
            max_attempts=_positive(settings, "llm.max_attempts", DEFAULT_ATTEMPTS, int),
        )

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    def complete(self, request: ChatRequest, observer: StreamObserver) -> Completion:
        model = request.model or self.model
        if not model:
            raise NodeExecutionError(
                "the openai provider needs a model name: set the node's `model` input or the setting llm.model",
                retryable=False,
            )
        body: dict[str, Any] = {
            "model": model,
            "messages": [dict(message) for message in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "stream": request.stream,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        headers = {"Accept": "text/event-stream" if request.stream else "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        with httpx.Client(timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0))) as client:
            if request.json_schema is None:
                return self._send(client, body, headers, observer)
            schema = dict(request.json_schema)
            if self.base_url not in _json_schema_refused:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": _schema_name(schema), "schema": schema, "strict": False},
                }
                try:
                    return self._send(client, body, headers, observer, _refuses_json_schema)
                except _FormatRefused as refused:
                    log.info("%s refused response_format json_schema (%s); using json_object",
                             self.base_url, refused.refusal.message)
            # llama.cpp servers read the schema in `json_object` mode; others ignore it
            body["response_format"] = {"type": "json_object", "schema": schema}
            completion = self._send(client, body, headers, observer)
            with _json_schema_lock:
                _json_schema_refused.add(self.base_url)
            return completion

    def _send(
        self,
        client: httpx.Client,
        body: dict[str, Any],
        headers: dict[str, str],
        observer: StreamObserver,
        format_refused: Callable[[_Refusal], bool] | None = None,
    ) -> Completion:
        attempts = self.backoff.max_attempts
        for attempt in range(1, attempts + 1):
            log.debug("POST %s model=%s attempt %d of %d", self.endpoint, body["model"], attempt, attempts)
            outcome = self._attempt(client, body, headers, observer)
            if isinstance(outcome, Completion):
                return outcome
            refusal = outcome
            if format_refused is not None and format_refused(refusal):
                raise _FormatRefused(refusal)
            if not refusal.retryable or attempt == attempts:
                tried = f" after {attempt} attempts" if attempt > 1 else ""
                raise NodeExecutionError(
                    f"LLM server at {self.base_url} failed{tried}: {refusal.message}",
                    retryable=refusal.retryable,
                    details={"status": refusal.status, "endpoint": self.endpoint, "attempts": attempt},
                )
            delay = refusal.retry_after if refusal.retry_after is not None else self.backoff.delay(attempt)
            log.warning("LLM server at %s: %s; retrying in %.1f s (attempt %d of %d)",
                        self.base_url, refusal.message, delay, attempt + 1, attempts)
            observer.wait(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _attempt(
        self, client: httpx.Client, body: dict[str, Any], headers: dict[str, str], observer: StreamObserver
    ) -> Completion | _Refusal:
        try:
            with client.stream("POST", self.endpoint, json=body, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    status = response.status_code
                    message = self._scrub(f"HTTP {status}: {_server_message(response)}")
                    retryable = status == 429 or status >= 500
                    return _Refusal(message, status, retryable, _retry_after(response) if retryable else None)
                if body["stream"]:
                    return self._read_events(response, observer)
                response.read()
                return self._read_whole(response)
        except httpx.ConnectError as error:
            return _Refusal(self._scrub(f"cannot connect: {error}"), None, retryable=True)
        except httpx.TimeoutException:
            raise NodeExecutionError(
                f"LLM server at {self.base_url} did not answer within {self.timeout:g} s "
                f"(raise the setting llm.request_timeout for slow models)",
                details={"endpoint": self.endpoint},
            ) from None
        except httpx.HTTPError as error:
            raise NodeExecutionError(
                self._scrub(f"LLM server at {self.base_url}: {type(error).__name__}: {error}"),
                details={"endpoint": self.endpoint},
            ) from None

    def _read_whole(self, response: httpx.Response) -> Completion:
        try:
            payload = response.json()
            choice = payload["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise NodeExecutionError(
                f"LLM server at {self.base_url} sent an answer that is not a chat completion: "
                f"{self._scrub(response.text[:200])!r}",
                details={"endpoint": self.endpoint},
            ) from None
        usage = payload.get("usage") or {}
        return Completion(text, choice.get("finish_reason"), usage.get("prompt_tokens"), usage.get("completion_tokens"))

    def _read_events(self, response: httpx.Response, observer: StreamObserver) -> Completion:
        pieces: list[str] = []
        finish_reason: str | None = None
        usage: Mapping[str, Any] = {}
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue  # comments (keep-alives), event names and blank separators
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                event = json.loads(data)
            except ValueError:
                raise NodeExecutionError(
                    f"LLM server at {self.base_url} sent a malformed event: {self._scrub(data[:200])!r}",
                    details={"endpoint": self.endpoint},
                ) from None
            if not isinstance(event, dict):
                continue
            if event.get("error") is not None:
                error = event["error"]
                message = error.get("message") if isinstance(error, dict) else error
                raise NodeExecutionError(
                    self._scrub(f"LLM server at {self.base_url} failed while streaming: {message}"),
                    details={"endpoint": self.endpoint},
                )
            usage = event.get("usage") or usage
            for choice in event.get("choices") or ():
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    pieces.append(delta)
                    observer.on_text(delta)  # raises when the run is cancelled: we stop reading
                finish_reason = choice.get("finish_reason") or finish_reason
        completion_tokens = usage.get("completion_tokens", len(pieces))
        return Completion("".join(pieces), finish_reason, usage.get("prompt_tokens"), completion_tokens)

    def _scrub(self, text: str) -> str:
        """`text` without the API key (servers sometimes quote it back, in part or whole)."""
        if self._api_key:
            text = text.replace(self._api_key, "[redacted]")
        return text


def _schema_name(schema: Mapping[str, Any]) -> str:
    title = schema.get("title")
    if isinstance(title, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", title):
        return title
    return "output"
