"""Model files in ComfyUI's layout, the handles the comfy nodes pass around, and LoRA patches.

`$NODELOOM_MODELS` is a folder laid out as ComfyUI's `models/`: `checkpoints/`, `loras/`,
`vae/` (and `configs/` for the configs of single-file checkpoints). A checkpoint is a
diffusers pipeline folder (written by `save_pretrained`) or a single `.safetensors` file,
loaded with the diffusers config folder `configs/<file stem>/`; never a hub download.

Handles are small JSON objects (they cross processes with Celery): a `DiffusionModel` is
`{"checkpoint": <pipeline handle>, "loras": [[file, strength], ...]}`, a `Clip` the same
plus `"layer"` (CLIPSetLastLayer), a `Vae` `{"checkpoint": ...}` or `{"file": <handle>}`.
The loaded models stay in this process's caches (`CHECKPOINTS`, `VAES`), so a GPU worker
loads a checkpoint once. LoRAs are applied the way ComfyUI applies them: the weights of
the loaded model are patched for one call and restored after it, so the cached model
itself never changes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from nodeloom.core.errors import NodeExecutionError
from nodeloom.node_registry.image.pipelines import PipelineCache, PipelineHandle, choose_handle, load_pipeline

ModelFolder = Literal["checkpoints", "loras", "vae"]
MODELS_ENV = "NODELOOM_MODELS"
_WEIGHT_SUFFIXES = (".safetensors",)


def models_root() -> Path:
    """The ComfyUI-style models folder: `$NODELOOM_MODELS`, else `~/.nodeloom/models`."""
    configured = os.environ.get(MODELS_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("NODELOOM_HOME") or Path.home() / ".nodeloom") / "models"


def available(folder: ModelFolder) -> list[str]:
    """The names a node may give for `folder`: its model folders and .safetensors files."""
    base = models_root() / folder
    if not base.is_dir():
        return []
    return sorted(
        entry.name for entry in base.iterdir() if entry.is_dir() or entry.suffix in _WEIGHT_SUFFIXES
    )


def resolve(folder: ModelFolder, name: str, port: str) -> Path:
    """The file or folder `name` names under `$NODELOOM_MODELS/<folder>` (or an absolute path)."""
    given = Path(name).expanduser()
    found = given if given.is_absolute() else models_root() / folder / name
    if found.exists():
        return found.resolve()
    names = available(folder)
    listing = f"; available: {', '.join(names)}" if names else f"; {models_root() / folder} is empty or missing"
    raise NodeExecutionError(
        f"{port}: no model {name!r} in {models_root() / folder} (set {MODELS_ENV} to ComfyUI's models "
        f"folder){listing}",
        retryable=False,
        details={"port": port, "name": name, "folder": str(models_root() / folder)},
    )


def _single_file_config(path: Path) -> Path:
    config = models_root() / "configs" / path.stem
    if not (config / "model_index.json").is_file() and not (config / "config.json").is_file():
        raise NodeExecutionError(
            f"{path.name} is a single-file checkpoint: it loads with a local diffusers config folder, "
            f"expected at {config} (the folder save_pretrained writes for the same architecture; "
            "configs are enough, no weights needed)",
            retryable=False,
            details={"model": str(path), "config": str(config)},
        )
    return config


def load_checkpoint(handle: PipelineHandle) -> Any:
    """A diffusers pipeline folder, or a single .safetensors file read with its local config."""
    path = Path(handle.model)
    if path.is_dir():
        return load_pipeline(handle)
    import torch
    from diffusers import StableDiffusionPipeline

    config = _single_file_config(path)
    try:
        pipeline = StableDiffusionPipeline.from_single_file(
            str(path), config=str(config), local_files_only=True, dtype=getattr(torch, handle.dtype)
        ).to(handle.device)
    except Exception as error:  # diffusers raises many kinds for a file it cannot read
        raise NodeExecutionError(
            f"cannot load the checkpoint file {path}: {type(error).__name__}: {error}",
            retryable=False,
            details={"model": str(path)},
        ) from None
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def load_vae(handle: PipelineHandle) -> Any:
    """An `AutoencoderKL` from a diffusers folder, or a .safetensors file with `configs/<stem>/`."""
    import torch
    from diffusers import AutoencoderKL

    path = Path(handle.model)
    dtype = getattr(torch, handle.dtype)
    try:
        if path.is_dir():
            vae = AutoencoderKL.from_pretrained(  # type: ignore[no-untyped-call]
                str(path), dtype=dtype, local_files_only=True
            )
        else:
            vae = AutoencoderKL.from_single_file(
                str(path), config=str(_single_file_config(path)), dtype=dtype, local_files_only=True
            )
    except NodeExecutionError:
        raise
    except Exception as error:
        raise NodeExecutionError(
            f"cannot load the VAE {path}: {type(error).__name__}: {error}", retryable=False,
            details={"model": str(path)},
        ) from None
    return vae.to(handle.device)


#: checkpoints loaded in this process (a GPU worker keeps them warm between tasks)
CHECKPOINTS = PipelineCache(loader=load_checkpoint)
#: VAEs loaded by VAELoader in this process
VAES = PipelineCache(loader=load_vae)


def model_handle(folder: ModelFolder, name: str, port: str, lane_device: str | None) -> dict[str, Any]:
    """The JSON handle of a model file found in `folder`, on the lane's device (fp16 on a GPU)."""
    return choose_handle(str(resolve(folder, name, port)), "auto", "auto", lane_device).to_json()


def pipeline_handle(handle: Mapping[str, Any], lane_device: str | None, port: str) -> PipelineHandle:
    """The pipeline handle inside a comfy handle, moved to the lane's GPU."""
    inner = handle.get("checkpoint") if isinstance(handle, Mapping) else None
    if not isinstance(inner, Mapping):
        raise NodeExecutionError(
            f"{port}: not a handle of a loaded checkpoint; connect it to CheckpointLoaderSimple's output",
            retryable=False,
            details={"port": port},
        )
    return PipelineHandle.of(inner).on_lane(lane_device)


@contextmanager
def checkpoint(handle: Mapping[str, Any], lane_device: str | None, port: str) -> Iterator[Any]:
    """The loaded pipeline of a comfy handle, for this caller alone until the block ends."""
    with CHECKPOINTS.using(pipeline_handle(handle, lane_device, port)) as pipeline:
        yield pipeline


def lora_stack(handle: Mapping[str, Any]) -> list[tuple[str, float]]:
    return [(str(file), float(strength)) for file, strength in handle.get("loras", ())]


def read_lora(path: str) -> dict[str, tuple[Any, Any, float | None]]:
    """A LoRA file's low-rank pairs by module path: `{"unet.down_blocks...to_q": (down, up, alpha)}`.

    Reads the diffusers/PEFT layout (`<module>.lora_A.weight`/`lora_B.weight`, or
    `lora.down`/`lora.up`, with an optional `<module>.alpha`) that `save_lora_weights` writes.
    """
    from safetensors.torch import load_file

    tensors = load_file(path)
    pairs: dict[str, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        for suffix, part in ((".lora_A.weight", "down"), (".lora_B.weight", "up"), (".lora.down.weight", "down"),
                             (".lora.up.weight", "up"), (".alpha", "alpha")):
            if key.endswith(suffix):
                pairs.setdefault(key.removesuffix(suffix), {})[part] = tensor
                break
    found = {
        module: (parts["down"], parts["up"], float(parts["alpha"]) if "alpha" in parts else None)
        for module, parts in pairs.items()
        if "down" in parts and "up" in parts
    }
    if not found:
        raise NodeExecutionError(
            f"{Path(path).name} holds no LoRA weights nodeloom can read: expected the diffusers/PEFT layout "
            "('<module>.lora_A.weight' and '<module>.lora_B.weight', as save_lora_weights writes)",
            retryable=False,
            details={"lora": path},
        )
    return found


@contextmanager
def patched(component: Any, prefix: str, loras: Sequence[tuple[str, float]]) -> Iterator[None]:
    """`component`'s weights with every LoRA of the stack added (`W += s·α/r·up@down`), restored after."""
    if not loras:
        yield
        return
    import torch

    originals: dict[Any, Any] = {}  # module -> its weight before the patches
    modules = dict(component.named_modules())
    try:
        with torch.no_grad():
            for file, strength in loras:
                if strength == 0:
                    continue
                for module_path, (down, up, alpha) in read_lora(file).items():
                    head, _, name = module_path.partition(".")
                    if head != prefix:
                        continue
                    # transformers 5 dropped the "text_model." level the LoRA files name
                    target = modules.get(name) or modules.get(name.removeprefix("text_model."))
                    if target is None or not hasattr(target, "weight"):
                        raise NodeExecutionError(
                            f"LoRA {Path(file).name} patches {module_path}, which the checkpoint has not: "
                            "it was made for another architecture",
                            retryable=False,
                            details={"lora": file, "module": module_path},
                        )
                    weight = target.weight
                    if target not in originals:
                        originals[target] = weight.detach().clone()
                    scale = strength * ((alpha / down.shape[0]) if alpha is not None else 1.0)
                    delta = up.to(torch.float32).flatten(1) @ down.to(torch.float32).flatten(1)
                    weight += (scale * delta).reshape(weight.shape).to(weight.device, weight.dtype)
        yield
    finally:
        with torch.no_grad():
            for module, original in originals.items():
                module.weight.copy_(original)
