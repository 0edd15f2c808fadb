"""Diffusers pipelines: the handle nodes pass around, and the per-process cache of loaded pipelines.

A `PipelineHandle` names a pipeline (model, dtype, device) without holding it, so it can be
hashed into cache keys and sent between processes. `PIPELINES.get(handle)` returns the loaded
pipeline, loading it with diffusers' `from_pretrained` on a miss. torch and diffusers are
imported on first use: listing the image pack costs no import of either.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.preflight import problems_raised
from nodeloom.core.spec import InputProblem, NodePreflight

DType = Literal["float16", "bfloat16", "float32"]
DTYPES: tuple[DType, ...] = ("float16", "bfloat16", "float32")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class PipelineHandle:
    """Which pipeline to use: a model folder or hub id, loaded in `dtype` on `device`."""

    model: str
    dtype: DType
    device: str

    def to_json(self) -> dict[str, str]:
        return {"model": self.model, "dtype": self.dtype, "device": self.device}

    @classmethod
    def of(cls, value: PipelineHandle | Mapping[str, Any]) -> PipelineHandle:
        """The handle itself, or one rebuilt from its JSON form (after a trip between processes)."""
        if isinstance(value, PipelineHandle):
            return value
        try:
            dtype = value["dtype"]
            if dtype not in DTYPES:
                raise ValueError(f"unknown dtype {dtype!r}")
            return cls(model=str(value["model"]), dtype=dtype, device=str(value["device"]))
        except (KeyError, TypeError, ValueError) as error:
            raise NodeExecutionError(
                f"not a DiffusionPipe handle ({error}); connect the output of an image.pipeline node",
                retryable=False,
            ) from None

    def on_lane(self, lane_device: str | None) -> PipelineHandle:
        """The handle moved to the GPU of the executor lane running the node, if it names another GPU."""
        if lane_device and lane_device.startswith("cuda") and self.device.startswith("cuda"):
            return replace(self, device=lane_device)
        return self


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def choose_handle(
    model: str, device: str = "auto", dtype: str = "auto", lane_device: str | None = None
) -> PipelineHandle:
    """Resolve "auto": the executor lane's device, else a GPU if any, else the CPU; float16 only on a GPU.

    A local folder is named by its absolute path, so the same folder gives the same handle.
    """
    if device == "auto":
        device = lane_device or ("cuda" if cuda_available() else "cpu")
    if dtype == "auto":
        dtype = "float16" if device.startswith("cuda") else "float32"
    if dtype not in DTYPES:
        raise NodeExecutionError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)} or auto", retryable=False)
    folder = Path(model).expanduser()
    if folder.exists() or _looks_like_path(model):
        model = str(folder.resolve())
    return PipelineHandle(model=model, dtype=dtype, device=device)


def model_preflight(use: NodePreflight) -> list[InputProblem]:
    """image.pipeline's preflight: a literal `model` that names a folder must be a pipeline folder
    (a hub id is left to the run: finding it may need the network)."""
    model = use.inputs.get("model")
    if not isinstance(model, str):
        return []
    folder = Path(model).expanduser()
    if not (folder.exists() or _looks_like_path(model)):
        return []
    return problems_raised(lambda: _check_folder(folder.resolve()), "model_missing", port="model")


def _looks_like_path(model: str) -> bool:
    # "org/name" is a hub id; a name rooted at /, ~ or . is a folder, even a missing one
    return model.startswith(("/", "~", "./", "../"))


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def load_pipeline(handle: PipelineHandle) -> Any:
    """Load a diffusers pipeline with `DiffusionPipeline.from_pretrained`; failures become clear errors."""
    try:
        import torch
        from diffusers import DiffusionPipeline
    except ImportError as error:
        raise NodeExecutionError(
            f"loading diffusion models needs the Python package {error.name!r}: pip install 'nodeloom[image]'",
            retryable=False,
            details={"missing": error.name},
        ) from None
    folder = Path(handle.model)
    local = folder.is_absolute()
    if local:
        _check_folder(folder)
    offline = local or hub_offline()
    try:
        pipeline = DiffusionPipeline.from_pretrained(  # type: ignore[no-untyped-call]
            handle.model, dtype=getattr(torch, handle.dtype), local_files_only=offline
        )
        pipeline = pipeline.to(handle.device)
    except Exception as error:  # diffusers raises many kinds (OSError, ValueError, JSONDecodeError, ...)
        reason = ": ".join([type(error).__name__, *str(error).strip().splitlines()[:1]])
        if local:
            fix = "re-create it with save_pretrained, or point the model input at a complete diffusers folder"
            message = f"cannot load the diffusers pipeline in folder {handle.model}: {reason}; {fix}"
        elif offline:
            fix = (
                "it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: download it where the hub is "
                f"reachable (hf download {handle.model}) or give the path of a local model folder"
            )
            message = f"cannot load hub model {handle.model!r}: {fix} ({reason})"
        else:
            fix = "check the model id, the network, and HF_TOKEN for gated models, or give a local model folder"
            message = f"cannot load hub model {handle.model!r}: {reason}; {fix}"
        raise NodeExecutionError(message, retryable=False, details={"model": handle.model, "cause": reason}) from None
    if hasattr(pipeline, "set_progress_bar_config"):
        pipeline.set_progress_bar_config(disable=True)  # progress goes to run events, not to stderr
    return pipeline


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise NodeExecutionError(
            f"no model folder at {folder}: give the path of a diffusers pipeline folder (one written by "
            "save_pretrained, holding model_index.json) or a hub id such as 'org/name'",
            retryable=False,
            details={"model": str(folder)},
        )
    if not (folder / "model_index.json").is_file():
        raise NodeExecutionError(
            f"{folder} is not a diffusers pipeline folder: it has no model_index.json; give the folder that "
            "save_pretrained wrote (with model_index.json and unet/, vae/, ... beside it)",
            retryable=False,
            details={"model": str(folder)},
        )


@dataclass(frozen=True, slots=True)
class _Loaded:
    pipeline: Any
    #: held while the pipeline runs: its scheduler keeps per-call state
    in_use: threading.Lock


class PipelineCache:
    """Loaded pipelines by handle: a thread-safe LRU of at most `max_entries`, counting its loads.

    Two threads asking for the same missing pipeline load it once; loads of different
    pipelines do not wait for each other. `loader` loads a handle's model (default: a
    diffusers pipeline folder or hub id); other packs keep other models the same way.
    """

    def __init__(self, max_entries: int = 2, loader: Callable[[PipelineHandle], Any] | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._load = loader or load_pipeline
        self.loads = 0
        self._entries: OrderedDict[PipelineHandle, _Loaded] = OrderedDict()
        self._loading: dict[PipelineHandle, threading.Lock] = {}
        self._lock = threading.Lock()

    def __contains__(self, handle: object) -> bool:
        with self._lock:
            return handle in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def held(self) -> list[dict[str, str]]:
        """The handles of the loaded pipelines (JSON form), least recently used first: what a worker reports."""
        with self._lock:
            return [handle.to_json() for handle in self._entries]

    def get(self, handle: PipelineHandle) -> Any:
        """The loaded pipeline for `handle`, loading it on a miss."""
        return self._entry(handle).pipeline

    @contextmanager
    def using(self, handle: PipelineHandle) -> Iterator[Any]:
        """The loaded pipeline, for this caller alone until the block ends."""
        entry = self._entry(handle)
        with entry.in_use:
            yield entry.pipeline

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.loads = 0
        _release_device_memory()

    def _entry(self, handle: PipelineHandle) -> _Loaded:
        with self._lock:
            found = self._entries.get(handle)
            if found is not None:
                self._entries.move_to_end(handle)
                return found
            pending = self._loading.setdefault(handle, threading.Lock())
        with pending:
            with self._lock:
                found = self._entries.get(handle)
                if found is not None:
                    return found
            try:
                entry = _Loaded(self._load(handle), threading.Lock())
            finally:
                with self._lock:
                    self._loading.pop(handle, None)
            with self._lock:
                self._entries[handle] = entry
                self.loads += 1
                evicted = len(self._entries) > self.max_entries
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        if evicted:
            _release_device_memory()
        return entry


def _release_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


#: the pipelines loaded in this process (a GPU worker keeps them warm between tasks)
PIPELINES = PipelineCache()
