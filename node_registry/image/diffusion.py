"""Diffusion nodes: load a diffusers pipeline, generate images from a prompt, edit an image by prompt.

`image.pipeline` loads a model into this process's pipeline cache and outputs a
`PipelineHandle`; `image.generate` and `image.edit` look the pipeline up by that handle
(loading it on a miss, as in another worker process). Every denoising step is a progress
event and a cancellation point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from PIL import Image

from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.ports import Pattern, Range
from nodeloom.core.spec import node
from nodeloom.core.types import DiffusionPipe, ImageRef
from nodeloom.node_registry.image._io import read_image, store_png
from nodeloom.node_registry.image.pipelines import PIPELINES, PipelineHandle, choose_handle, model_preflight

PipeRef = Annotated[PipelineHandle, DiffusionPipe]
Steps = Annotated[int, Range(1, 500), "denoising steps"]
Guidance = Annotated[float, Range(0, 50), "classifier-free guidance scale: how closely to follow the prompt"]
Seed = Annotated[int, Range(0, 2**63 - 1), "random seed; the same seed gives the same image"]
StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]


@node("image.pipeline", resources="gpu", output="pipe", preflight=model_preflight)
def load_diffusion_pipeline(
    ctx: NodeContext,
    model: Annotated[str, "a diffusers model folder (written by save_pretrained) or a hub id 'org/name'"],
    device: Annotated[str, Pattern(r"auto|cpu|mps|cuda(:\d+)?"), "auto: the GPU if there is one, else the CPU"]
    = "auto",
    dtype: Annotated[Literal["auto", "float16", "bfloat16", "float32"], "auto: float16 on a GPU, float32 on the CPU"]
    = "auto",
) -> PipeRef:
    """Load a diffusers pipeline (kept loaded in this process) for image.generate and image.edit."""
    handle = choose_handle(model, device, dtype, ctx.device)
    PIPELINES.get(handle)
    return handle


@node("image.generate", resources="gpu", deterministic=False, output="images")
def generate(
    ctx: NodeContext,
    pipe: PipeRef,
    prompt: Annotated[str, "what the image shows"],
    negative_prompt: Annotated[str, "what the image must not show"] = "",
    steps: Steps = 30,
    guidance: Guidance = 7.5,
    width: Annotated[int, Range(8, 4096), "image width in pixels, a multiple of 8"] = 512,
    height: Annotated[int, Range(8, 4096), "image height in pixels, a multiple of 8"] = 512,
    seed: Seed | None = None,
    batch_size: Annotated[int, Range(1, 16), "how many images to make"] = 1,
) -> list[ImageRef]:
    """Generate images from a text prompt with a diffusion pipeline."""
    for name, value in (("width", width), ("height", height)):
        if value % 8:
            raise NodeExecutionError(
                f"{name} must be a multiple of 8, got {value} (try {max(8, round(value / 8) * 8)})",
                retryable=False,
                details={"port": name},
            )
    handle = PipelineHandle.of(pipe).on_lane(ctx.device)
    with PIPELINES.using(handle) as diffusion:
        result = diffusion(
            prompt=prompt,
            negative_prompt=negative_prompt or None,
            num_inference_steps=steps,
            guidance_scale=guidance,
            width=width,
            height=height,
            num_images_per_prompt=batch_size,
            generator=_generator(seed),
            callback_on_step_end=_report_steps(ctx, steps),
            output_type="pil",
        )
    return [store_png(ctx, image) for image in result.images]


@node("image.edit", resources="gpu", deterministic=False, output="image")
def edit(
    ctx: NodeContext,
    pipe: PipeRef,
    image: ImageRef,
    prompt: Annotated[str, "the instruction: what the edited image should show"],
    negative_prompt: Annotated[str, "what the image must not show"] = "",
    strength: Annotated[float, Range(0, 1), "how much to change: 0 keeps the image, 1 repaints it"] = 0.6,
    steps: Steps = 30,
    guidance: Guidance = 7.5,
    seed: Seed | None = None,
) -> ImageRef:
    """Edit an image by prompt (image-to-image) with the components of a loaded pipeline."""
    if strength == 0:
        return image
    if int(steps * strength) < 1:
        raise NodeExecutionError(
            f"steps × strength must be at least 1 denoising step, got {steps} × {strength}: raise steps or strength",
            retryable=False,
            details={"port": "steps"},
        )
    source = read_image(ctx, image).convert("RGB")
    # the VAE works on multiples of 8; the result is scaled back to the input's size
    work_size = (max(8, round(source.width / 8) * 8), max(8, round(source.height / 8) * 8))
    work = source if work_size == source.size else source.resize(work_size, Image.Resampling.LANCZOS)
    handle = PipelineHandle.of(pipe).on_lane(ctx.device)
    with PIPELINES.using(handle) as diffusion:
        result = _image_to_image(diffusion)(
            prompt=prompt,
            negative_prompt=negative_prompt or None,
            image=work,
            strength=strength,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=_generator(seed),
            callback_on_step_end=_report_steps(ctx, int(steps * strength)),
            output_type="pil",
        )
    edited: Image.Image = result.images[0]
    if edited.size != source.size:
        edited = edited.resize(source.size, Image.Resampling.LANCZOS)
    return store_png(ctx, edited)


def _image_to_image(diffusion: Any) -> Any:
    """The image-to-image pipeline over the same loaded components: no second load."""
    from diffusers import AutoPipelineForImage2Image

    try:
        editor = AutoPipelineForImage2Image.from_pipe(diffusion)
    except ValueError as error:
        raise NodeExecutionError(
            f"{type(diffusion).__name__} has no image-to-image variant ({error}); load a model such as "
            "Stable Diffusion, SDXL or Flux for image.edit",
            retryable=False,
        ) from None
    editor.set_progress_bar_config(disable=True)
    return editor


def _generator(seed: int | None) -> Any:
    if seed is None:
        return None
    import torch

    # a CPU generator gives the same noise, and so the same image, on every device
    return torch.Generator(device="cpu").manual_seed(seed)


def _report_steps(ctx: NodeContext, expected: int) -> StepCallback:
    """A `callback_on_step_end` that reports each step; RunCancelledError from it stops the pipeline."""

    def report(diffusion: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        total = getattr(diffusion, "num_timesteps", None) or expected
        ctx.progress(step + 1, total, f"denoising step {step + 1} of {total}")
        return tensors

    return report
