"""The LLM pack, run by the real executor against real backends.

The `local` provider runs the embedded SmolLM2-135M model with llama.cpp. The `openai`
provider talks to a real OpenAI-compatible server, llama-cpp-python's, started on
127.0.0.1 for this module and serving the same GGUF file. Only what that server cannot do
(answer 429, quote an API key back) comes from `FakeOpenAIServer`, a scripted stand-in.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import jsonschema
import pytest
from pydantic import BaseModel, Field

from nodeloom.core import (
    EventKind,
    Graph,
    GraphValidationError,
    NodeState,
    RunConfig,
    RunEvent,
    RunResult,
    RunStatus,
    node,
)
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry import NodeRegistry, builtin_registry
from nodeloom.node_registry.llm import llm_chat, llm_structured, local

WRONG_KEY = "nl-wrong-key-0b6e2d94c7a1f358"


class Scene(BaseModel):
    caption: Annotated[str, Field(max_length=40)]
    visual_prompt: Annotated[str, Field(max_length=60)]
    seconds: int


class Storyboard(BaseModel):
    scenes: Annotated[list[Scene], Field(min_length=1, max_length=2)]


@node("test.scene_count")
def scene_count(storyboard: Storyboard) -> int:
    """How many scenes a storyboard has (its input port is bound to the Storyboard model)."""
    return len(storyboard.scenes)


#: llama.cpp's schema grammar ignores minimum/maximum, so the model can write any integer;
#: no integer is both >= 10 and <= 5, so the validator rejects every reply
UNSATISFIABLE = {
    "type": "object",
    "properties": {"n": {"type": "integer", "minimum": 10, "maximum": 5}},
    "required": ["n"],
}


@pytest.fixture(scope="module")
def llm_registry() -> NodeRegistry:
    return builtin_registry().extended([llm_chat, llm_structured, scene_count])


@pytest.fixture
def llm_executor(llm_registry: NodeRegistry, tmp_path: Path) -> Iterator[LocalExecutor]:
    with LocalExecutor(llm_registry, artifacts=tmp_path / "artifacts") as engine:
        yield engine


def chat_graph(**inputs: Any) -> Graph:
    g = Graph()
    g.output("text", g.add("llm.chat", "chat", **inputs)["text"])
    return g


def structured_graph(**inputs: Any) -> Graph:
    g = Graph()
    g.output("data", g.add("llm.structured", "structured", **inputs)["data"])
    return g


def progress_texts(events: list[RunEvent]) -> list[str]:
    return [e.data["message"] for e in events if e.kind is EventKind.NODE_PROGRESS]


def json_values(text: str) -> list[Any]:
    """The JSON values written one after another in `text`."""
    decoder, values, position = json.JSONDecoder(), [], 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        value, position = decoder.raw_decode(text, position)
        values.append(value)
    return values


# -- the embedded model ------------------------------------------------------------


def test_local_chat_with_a_seed_at_temperature_zero_repeats_its_text(llm_executor: LocalExecutor) -> None:
    g = chat_graph(prompt="What is the capital of France? Answer in one word.", temperature=0.0, seed=7, max_tokens=12)
    first = llm_executor.run(g, use_cache=False)
    second = llm_executor.run(g, use_cache=False)
    assert first.ok and second.ok
    assert first.outputs["text"].strip()
    assert first.outputs["text"] == second.outputs["text"]
    assert first.nodes["chat"].state is second.nodes["chat"].state is NodeState.DONE  # generated twice, not cached


def test_local_model_loads_once_per_process(llm_executor: LocalExecutor) -> None:
    def chat(prompt: str) -> local.LoadedModel:
        assert llm_executor.run(chat_graph(prompt=prompt, temperature=0.0, max_tokens=4), use_cache=False).ok
        return local.MODELS.get(local.configured_model_path(), local.configured_threads())

    first = chat("Name a colour.")
    loads = local.load_count()
    second = chat("Name an animal.")
    assert loads >= 1
    assert local.load_count() == loads
    assert second is first


def test_local_structured_output_is_a_storyboard_that_feeds_a_typed_node(llm_executor: LocalExecutor) -> None:
    g = Graph()
    board = g.add(
        "llm.structured", "board",
        prompt="Storyboard for a 10 second tea advert, two short scenes.",
        schema=Storyboard.model_json_schema(), temperature=0.0, seed=3, max_tokens=200,
    )
    g.output("storyboard", board["data"])
    g.output("scenes", g.add(scene_count, "count", storyboard=board["data"])["result"])
    result = llm_executor.run(g)
    assert result.ok, result.errors()
    storyboard = Storyboard.model_validate(result.outputs["storyboard"])
    jsonschema.validate(result.outputs["storyboard"], Storyboard.model_json_schema())
    assert result.outputs["scenes"] == len(storyboard.scenes) >= 1


def test_structured_output_the_validator_rejects_is_retried_then_fails_with_the_last_raw_output(
    llm_executor: LocalExecutor,
) -> None:
    events: list[RunEvent] = []
    g = structured_graph(prompt="Give me a number.", schema=UNSATISFIABLE, temperature=0.0, seed=1, max_tokens=24)
    result = llm_executor.run(g, on_event=events.append, use_cache=False)
    assert result.status is RunStatus.FAILED
    error = result.nodes["structured"].error
    assert error is not None and error["attempts"] == 3
    assert "did not match the schema after 3 tries" in error["message"]
    replies = json_values("".join(progress_texts(events)))  # the streamed text of every try
    assert len(replies) == 3
    assert json.loads(error["raw_output"]) == replies[-1]
    assert isinstance(replies[-1]["n"], int)
    assert "maximum" in error["validation_error"] or "minimum" in error["validation_error"]


def test_a_structured_reply_cut_off_mid_json_is_asked_for_again_with_more_tokens(llm_executor: LocalExecutor) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
              "required": ["city", "country"]}
    settings = {"prompt": "Name the capital of France and its country.", "schema": schema, "temperature": 0.0,
                "seed": 1, "max_tokens": 6}
    once = llm_executor.run(structured_graph(**settings, max_repairs=0), use_cache=False)
    error = once.nodes["structured"].error
    assert error is not None and "cut off at max_tokens" in error["message"]  # 6 tokens cannot hold the reply
    result = llm_executor.run(structured_graph(**settings), use_cache=False)
    assert result.ok, result.errors()  # asked again with 12, then 24 tokens
    assert set(result.outputs["data"]) >= {"city", "country"}


def test_cancelling_a_run_stops_local_generation_at_the_next_token(llm_executor: LocalExecutor) -> None:
    streaming = threading.Event()
    g = chat_graph(prompt="Count from 1 to 500, one number per line.", temperature=0.0, max_tokens=1000)
    handle = llm_executor.submit(
        g, use_cache=False, on_event=lambda e: streaming.set() if e.kind is EventKind.NODE_PROGRESS else None
    )
    assert streaming.wait(30)
    assert handle.cancel() is True
    assert handle.result(timeout=10).status is RunStatus.CANCELLED
    # the cancelled generation lets go of the model at its next token, not after 1000 of them
    model = local.MODELS.get(local.configured_model_path(), local.configured_threads())
    start = time.monotonic()
    assert model.lock.acquire(timeout=10)
    model.lock.release()
    assert time.monotonic() - start < 2.0
    after = llm_executor.run(chat_graph(prompt="Say yes.", temperature=0.0, max_tokens=4), use_cache=False)
    assert after.ok and after.outputs["text"]


def test_a_missing_model_path_fails_with_a_clear_error(
    llm_executor: LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_LLM_MODEL_PATH", str(tmp_path / "absent.gguf"))
    result = llm_executor.run(chat_graph(prompt="Hello"), use_cache=False)
    error = result.nodes["chat"].error
    assert result.status is RunStatus.FAILED and error is not None
    assert "NODELOOM_LLM_MODEL_PATH" in error["message"] and "absent.gguf" in error["message"]


def test_a_corrupt_model_file_fails_with_a_clear_error(
    llm_executor: LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    monkeypatch.setenv("NODELOOM_LLM_MODEL_PATH", str(corrupt))
    loads = local.load_count()
    result = llm_executor.run(chat_graph(prompt="Hello"), use_cache=False)
    error = result.nodes["chat"].error
    assert result.status is RunStatus.FAILED and error is not None
    assert "cannot load the LLM" in error["message"] and str(corrupt) in error["message"]
    assert local.load_count() == loads


def test_an_unknown_provider_setting_fails_naming_the_known_ones(llm_executor: LocalExecutor) -> None:
    config = RunConfig(settings={"llm.provider": "telepathy"})
    result = llm_executor.run(chat_graph(prompt="Hello"), config=config, use_cache=False)
    error = result.nodes["chat"].error
    assert error is not None
    assert "unknown LLM provider 'telepathy'" in error["message"] and "local, openai" in error["message"]


# -- the openai provider against a real OpenAI-compatible server -------------------




@pytest.fixture
def server_config(llama_server: str, openai_key: str) -> RunConfig:
    return RunConfig(settings={"llm.provider": "openai", "llm.base_url": llama_server, "llm.model": "smollm2"})


def test_openai_chat_without_streaming_returns_the_servers_completion(
    llm_executor: LocalExecutor, server_config: RunConfig
) -> None:
    events: list[RunEvent] = []
    g = chat_graph(prompt="What is the capital of France? Answer in one word.", temperature=0.0, seed=1, max_tokens=12,
                   stream=False)
    result = llm_executor.run(g, config=server_config, on_event=events.append, use_cache=False)
    assert result.ok, result.errors()
    assert "Paris" in result.outputs["text"]
    assert progress_texts(events) == []


def test_openai_chat_streams_tokens_as_progress_events(llm_executor: LocalExecutor, server_config: RunConfig) -> None:
    events: list[RunEvent] = []
    g = chat_graph(prompt="Write one sentence about tea.", temperature=0.0, seed=1, max_tokens=24)
    result = llm_executor.run(g, config=server_config, on_event=events.append, use_cache=False)
    assert result.ok, result.errors()
    streamed = progress_texts(events)
    assert len(streamed) >= 2
    assert "".join(streamed) == result.outputs["text"]
    duration = result.nodes["chat"].duration
    assert duration is not None and len(streamed) <= 10 * duration + 2  # throttled to about ten a second


def test_openai_structured_returns_json_that_matches_the_schema(
    llm_executor: LocalExecutor, server_config: RunConfig
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}, "country": {"type": "string", "maxLength": 20}},
        "required": ["city", "country"],
    }
    g = structured_graph(prompt="Name a famous city and its country.", schema=schema, temperature=0.0, seed=1,
                         max_tokens=40)
    result = llm_executor.run(g, config=server_config, use_cache=False)
    assert result.ok, result.errors()
    jsonschema.validate(result.outputs["data"], schema)


def test_openai_wrong_key_fails_at_once_with_the_servers_message(
    llm_executor: LocalExecutor, server_config: RunConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_OPENAI_API_KEY", WRONG_KEY)
    g = chat_graph(prompt="Hello", max_tokens=4)
    g.configure("chat", retry={"max_attempts": 3, "initial_backoff": 0.0})
    result = llm_executor.run(g, config=server_config, use_cache=False)
    record = result.nodes["chat"]
    assert record.state is NodeState.FAILED and record.error is not None
    assert "HTTP 401: Invalid API key" in record.error["message"]
    assert record.attempts == 1 and record.error["attempts"] == 1  # neither the node nor the provider retried


def assert_secret_absent(secret: str, results: list[RunResult], events: list[RunEvent], logs: str) -> None:
    assert secret not in json.dumps([r.to_json() for r in results])
    assert secret not in json.dumps([e.to_json() for e in events])
    assert secret not in logs


def test_the_api_key_appears_in_no_record_event_log_or_error(
    llm_executor: LocalExecutor, server_config: RunConfig, openai_key: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[RunEvent] = []
    g = chat_graph(prompt="Say hi.", temperature=0.0, max_tokens=6)
    succeeded = llm_executor.run(g, config=server_config, on_event=events.append, use_cache=False)
    monkeypatch.setenv("NODELOOM_OPENAI_API_KEY", WRONG_KEY)
    failed = llm_executor.run(g, config=server_config, on_event=events.append, use_cache=False)
    assert succeeded.ok and failed.status is RunStatus.FAILED
    assert caplog.records  # the requests were logged
    for secret in (openai_key, WRONG_KEY):
        assert_secret_absent(secret, [succeeded, failed], events, caplog.text)


# -- retries and client errors, against a scripted fake ----------------------------

Reply = tuple[int, Mapping[str, str], Mapping[str, Any]]


def completion_body(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


class FakeOpenAIServer:
    """A FAKE OpenAI-compatible endpoint: no model, it answers each POST with the next scripted reply.

    Used only for behaviours the real llama.cpp server cannot show: a 429 with Retry-After,
    5xx answers, and an error message that quotes the caller's API key back. Records when
    each request arrived, with its headers and body.
    """

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[float, dict[str, str], dict[str, Any]]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body))
                status, headers, payload = fake.replies.pop(0) if fake.replies else (500, {}, {"error": "no reply"})
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeOpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_key(openai_key: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("NODELOOM_LLM_PROVIDER", "openai")
    return openai_key


def fake_config(fake: FakeOpenAIServer, **settings: Any) -> RunConfig:
    return RunConfig(settings={"llm.base_url": fake.base_url, "llm.model": "fake-model", **settings})


def test_429_and_500_are_retried_honouring_retry_after(llm_executor: LocalExecutor, fake_key: str) -> None:
    replies: list[Reply] = [
        (429, {"Retry-After": "1"}, {"error": {"message": "slow down", "type": "rate_limit"}}),
        (500, {}, {"error": {"message": "overloaded"}}),
        (200, {}, completion_body("third time lucky")),
    ]
    with FakeOpenAIServer(replies) as fake:
        result = llm_executor.run(chat_graph(prompt="Hi", stream=False), config=fake_config(fake), use_cache=False)
    assert result.ok, result.errors()
    assert result.outputs["text"] == "third time lucky"
    assert len(fake.requests) == 3
    times = [arrived for arrived, _, _ in fake.requests]
    assert times[1] - times[0] >= 0.95  # waited the server's Retry-After (the first backoff would be 0.5 s)
    assert times[2] - times[1] >= 0.95  # then backed off exponentially: 0.5 s doubled
    assert fake.requests[0][1]["authorization"] == f"Bearer {fake_key}"


def test_retries_of_server_errors_are_bounded(llm_executor: LocalExecutor, fake_key: str) -> None:
    replies: list[Reply] = [(503, {"Retry-After": "0"}, {"error": {"message": "down for maintenance"}})] * 5
    with FakeOpenAIServer(replies) as fake:
        config = fake_config(fake, **{"llm.max_attempts": 2})
        result = llm_executor.run(chat_graph(prompt="Hi", stream=False), config=config, use_cache=False)
    error = result.nodes["chat"].error
    assert error is not None and len(fake.requests) == 2
    assert "failed after 2 attempts: HTTP 503: down for maintenance" in error["message"]


def test_a_client_error_fails_at_once_with_the_servers_message_and_without_the_key(
    llm_executor: LocalExecutor, fake_key: str
) -> None:
    message = f"Incorrect API key provided: {fake_key}. You can find your API key at the dashboard."
    replies: list[Reply] = [(400, {}, {"error": {"message": message, "type": "invalid_request_error"}})]
    with FakeOpenAIServer(replies) as fake:
        result = llm_executor.run(chat_graph(prompt="Hi", stream=False), config=fake_config(fake), use_cache=False)
    error = result.nodes["chat"].error
    assert error is not None and len(fake.requests) == 1
    assert "HTTP 400: Incorrect API key provided: [redacted]. You can find your API key" in error["message"]
    assert fake_key not in json.dumps(result.to_json())


def test_chat_messages_with_an_unknown_role_are_refused_before_running(llm_executor: LocalExecutor) -> None:
    g = chat_graph(messages=[{"role": "wizard", "content": "abracadabra"}])
    with pytest.raises(GraphValidationError) as caught:
        llm_executor.run(g)
    [issue] = caught.value.issues
    assert (issue.node, issue.port) == ("chat", "messages")
    assert "'wizard' is not one of ['system', 'user', 'assistant']" in issue.message


def test_a_raw_control_character_inside_a_json_string_is_kept_not_a_failed_reply() -> None:
    from nodeloom.node_registry.llm.nodes import _json_problem
    from nodeloom.node_registry.llm.provider import Completion

    validator = jsonschema.Draft202012Validator({"type": "object", "properties": {"reason": {"type": "string"}},
                                                 "required": ["reason"]})
    # the embedded model sometimes writes a newline or a tab into a string without escaping it
    data, problem = _json_problem(Completion('{"reason": "too dark\n\tneeds light"}', "stop", None, None), validator)
    assert (data, problem) == ({"reason": "too dark\n\tneeds light"}, None)
    data, problem = _json_problem(Completion('{"reason": "cut', "length", None, None), validator)
    assert data is None and problem is not None and "cut off at max_tokens" in problem
