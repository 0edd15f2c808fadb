"""The comfy nodes: ComfyUI's core Stable Diffusion nodes, with its input names, on diffusers.

Each node keeps the input names and the output order of the ComfyUI node it stands for
(`classes.py` maps the class names), so a workflow imports one to one. Latents and
conditionings travel as tensor artifacts (a latent as ComfyUI's `{"samples", "noise_mask"}`
dict, scaled as diffusers scales them); images as lists of PNG artifacts (a ComfyUI image is
a batch); masks as tensors. Model-touching nodes run on the `gpu` lane.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from PIL import Image, ImageOps

from nodeloom.core.artifacts import ArtifactRef
from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeExecutionError
from nodeloom.core.ports import Choices, Range
from nodeloom.core.spec import node
from nodeloom.core.types import Clip, Conditioning, DiffusionModel, Latent, List, Mask, Vae
from nodeloom.core.types import Image as ImageType
from nodeloom.node_registry.comfy import models
from nodeloom.node_registry.comfy.sampling import SAMPLERS, SCHEDULERS, SamplingPlan, ksampler_plan, make_scheduler
from nodeloom.node_registry.comfy.sampling import sample as run_sampler
from nodeloom.node_registry.image._io import read_image, store_png
from nodeloom.node_registry.image.pipelines import PipelineHandle

ModelRef = Annotated[dict[str, Any], DiffusionModel]
ClipRef = Annotated[dict[str, Any], Clip]
VaeRef = Annotated[dict[str, Any], Vae]
ConditioningRef = Annotated[ArtifactRef, Conditioning]
LatentRef = Annotated[ArtifactRef, Latent]
MaskRef = Annotated[ArtifactRef, Mask]
Images = Annotated[list[ArtifactRef], List(ImageType), "a batch of images"]
Seed = Annotated[int, Range(0, 2**64 - 1), "noise seed; the same seed gives the same image"]
Steps = Annotated[int, Range(1, 10000), "sampling steps"]
Cfg = Annotated[float, Range(0, 100), "classifier-free guidance: how closely to follow the prompt"]
SamplerName = Annotated[str, Choices(*SAMPLERS), "ComfyUI sampler name (a diffusers scheduler)"]
SchedulerName = Annotated[str, Choices(*SCHEDULERS), "ComfyUI scheduler name (the sigma spacing)"]
Size = Annotated[int, Range(16, 16384), "pixels, a multiple of 8"]
LatentMethod = Literal["nearest-exact", "bilinear", "area", "bicubic"]
ImageMethod = Literal["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
Crop = Literal["disabled", "center"]
INPUT_ENV = "NODELOOM_COMFY_INPUT"
_TORCH_MEDIA = "application/x-torch"


class CheckpointParts(NamedTuple):
    model: ModelRef
    clip: ClipRef
    vae: VaeRef


class LoraParts(NamedTuple):
    model: ModelRef
    clip: ClipRef


class LoadedImage(NamedTuple):
    image: Images
    mask: MaskRef


# -- artifacts -------------------------------------------------------------------------------
def _put_latent(ctx: NodeContext, latent: dict[str, Any]) -> ArtifactRef:
    import torch

    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu() for key, value in latent.items() if value is not None}, buffer)
    return ctx.artifacts.put_bytes(buffer.getvalue(), _TORCH_MEDIA, kind="latent")


def _latent(ctx: NodeContext, ref: ArtifactRef) -> dict[str, Any]:
    loaded = ctx.load_tensor(ref)
    if isinstance(loaded, dict) and "samples" in loaded:
        return dict(loaded)
    return {"samples": loaded}  # a bare tensor artifact is a latent without a mask


def _pil_batch(ctx: NodeContext, images: list[ArtifactRef]) -> list[Image.Image]:
    if not images:
        raise NodeExecutionError("the image batch is empty", retryable=False)
    return [read_image(ctx, ref).convert("RGB") for ref in images]


# -- loaders ---------------------------------------------------------------------------------
@node("comfy.checkpoint_loader_simple", resources="gpu", category="comfy")
def checkpoint_loader_simple(
    ctx: NodeContext,
    ckpt_name: Annotated[str, "a diffusers folder or .safetensors file in $NODELOOM_MODELS/checkpoints"],
) -> CheckpointParts:
    """CheckpointLoaderSimple: load a checkpoint (kept loaded) and split it into model, CLIP and VAE."""
    handle = models.model_handle("checkpoints", ckpt_name, "ckpt_name", ctx.device)
    models.CHECKPOINTS.get(PipelineHandle.of(handle))
    return CheckpointParts({"checkpoint": handle, "loras": []}, {"checkpoint": handle, "loras": [], "layer": -1},
                           {"checkpoint": handle})


@node("comfy.vae_loader", resources="gpu", category="comfy", output="vae")
def vae_loader(
    ctx: NodeContext,
    vae_name: Annotated[str, "a diffusers AutoencoderKL folder or .safetensors file in $NODELOOM_MODELS/vae"],
) -> VaeRef:
    """VAELoader: load a VAE (kept loaded) to use instead of the checkpoint's."""
    handle = models.model_handle("vae", vae_name, "vae_name", ctx.device)
    models.VAES.get(PipelineHandle.of(handle))
    return {"file": handle}


@node("comfy.lora_loader", category="comfy")
def lora_loader(
    model: ModelRef,
    clip: ClipRef,
    lora_name: Annotated[str, "a .safetensors LoRA in $NODELOOM_MODELS/loras"],
    strength_model: Annotated[float, Range(-100, 100)] = 1.0,
    strength_clip: Annotated[float, Range(-100, 100)] = 1.0,
) -> LoraParts:
    """LoraLoader: add a LoRA to the model and the CLIP (applied to the weights when they run)."""
    path = str(models.resolve("loras", lora_name, "lora_name"))
    models.read_lora(path)  # a file that is not a LoRA fails here, not in the sampler
    return LoraParts(
        {**model, "loras": [*model.get("loras", []), [path, strength_model]]},
        {**clip, "loras": [*clip.get("loras", []), [path, strength_clip]]},
    )


@node("comfy.clip_set_last_layer", category="comfy", output="clip")
def clip_set_last_layer(
    clip: ClipRef,
    stop_at_clip_layer: Annotated[int, Range(-24, -1), "-1: the last layer; -2: skip one (clip skip 1)"] = -1,
) -> ClipRef:
    """CLIPSetLastLayer: take the text embedding from an earlier layer of the text encoder."""
    return {**clip, "layer": stop_at_clip_layer}


# -- conditioning ----------------------------------------------------------------------------
@node("comfy.clip_text_encode", resources="gpu", category="comfy", output="conditioning")
def clip_text_encode(ctx: NodeContext, text: Annotated[str, "the prompt"], clip: ClipRef) -> ConditioningRef:
    """CLIPTextEncode: encode a prompt with the checkpoint's text encoder."""
    import torch

    with models.checkpoint(clip, ctx.device, "clip") as pipeline:
        tokenizer, encoder = getattr(pipeline, "tokenizer", None), getattr(pipeline, "text_encoder", None)
        if tokenizer is None or encoder is None or getattr(pipeline, "text_encoder_2", None) is not None:
            raise NodeExecutionError(
                f"{type(pipeline).__name__} is not a Stable Diffusion 1.x/2.x checkpoint (one CLIP text encoder); "
                "the comfy pack runs those",
                retryable=False,
            )
        tokens = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                           return_tensors="pt")
        ids = tokens.input_ids.to(encoder.device)
        mask = tokens.attention_mask.to(encoder.device) if getattr(encoder.config, "use_attention_mask", False) \
            else None
        layer = int(clip.get("layer", -1))
        with models.patched(encoder, "text_encoder", models.lora_stack(clip)), torch.no_grad():
            if layer == -1:
                embeds = encoder(ids, attention_mask=mask)[0]
            else:
                hidden = encoder(ids, attention_mask=mask, output_hidden_states=True).hidden_states
                embeds = getattr(encoder, "text_model", encoder).final_layer_norm(hidden[layer])
    return ctx.put_tensor(embeds.to(torch.float32), "conditioning")


@node("comfy.conditioning_combine", category="comfy", output="conditioning")
def conditioning_combine(
    ctx: NodeContext, conditioning_1: ConditioningRef, conditioning_2: ConditioningRef
) -> ConditioningRef:
    """ConditioningCombine: both conditionings; the sampler averages their predictions."""
    import torch

    first, second = ctx.load_tensor(conditioning_1), ctx.load_tensor(conditioning_2)
    if first.shape[1:] != second.shape[1:]:
        raise NodeExecutionError(
            f"the conditionings have different shapes {tuple(first.shape[1:])} and {tuple(second.shape[1:])}: "
            "they come from different text encoders",
            retryable=False,
        )
    return ctx.put_tensor(torch.cat([first, second]), "conditioning")


# -- latents ---------------------------------------------------------------------------------
def _check_multiple_of_8(**sizes: int) -> None:
    for name, value in sizes.items():
        if value % 8:
            raise NodeExecutionError(
                f"{name} must be a multiple of 8, got {value} (try {max(8, round(value / 8) * 8)})",
                retryable=False,
                details={"port": name},
            )


@node("comfy.empty_latent_image", category="comfy", output="latent")
def empty_latent_image(
    ctx: NodeContext, width: Size = 512, height: Size = 512,
    batch_size: Annotated[int, Range(1, 4096)] = 1,
) -> LatentRef:
    """EmptyLatentImage: a blank latent of the image size, to sample from."""
    import torch

    _check_multiple_of_8(width=width, height=height)
    return _put_latent(ctx, {"samples": torch.zeros(batch_size, 4, height // 8, width // 8)})


def _sampler(ctx: NodeContext, model: dict[str, Any], positive: ArtifactRef, negative: ArtifactRef,
             latent_image: ArtifactRef, *, seed: int, cfg: float, sampler_name: str, scheduler: str,
             plan: SamplingPlan) -> ArtifactRef:
    latent = _latent(ctx, latent_image)
    conditioned, unconditioned = ctx.load_tensor(positive), ctx.load_tensor(negative)

    def report(done: int, total: int) -> None:
        ctx.progress(done, total, f"sampling step {done} of {total}")

    with models.checkpoint(model, ctx.device, "model") as pipeline:
        steps_scheduler = make_scheduler(pipeline.scheduler.config, sampler_name, scheduler)
        with models.patched(pipeline.unet, "unet", models.lora_stack(model)):
            samples = run_sampler(pipeline, steps_scheduler, latent, conditioned, unconditioned, seed=seed,
                                  cfg=cfg, plan=plan, on_step=report)
    return _put_latent(ctx, {**latent, "samples": samples})


@node("comfy.ksampler", resources="gpu", category="comfy", output="latent")
def ksampler(
    ctx: NodeContext,
    model: ModelRef,
    seed: Seed,
    steps: Steps,
    cfg: Cfg,
    sampler_name: SamplerName,
    scheduler: SchedulerName,
    positive: ConditioningRef,
    negative: ConditioningRef,
    latent_image: LatentRef,
    denoise: Annotated[float, Range(0, 1), "1: from pure noise; lower keeps more of the latent"] = 1.0,
) -> LatentRef:
    """KSampler: denoise a latent guided by the positive and negative conditionings."""
    if denoise <= 0:
        return latent_image
    return _sampler(ctx, model, positive, negative, latent_image, seed=seed, cfg=cfg, sampler_name=sampler_name,
                    scheduler=scheduler, plan=ksampler_plan(steps, denoise))


@node("comfy.ksampler_advanced", resources="gpu", category="comfy", output="latent")
def ksampler_advanced(
    ctx: NodeContext,
    model: ModelRef,
    add_noise: Literal["enable", "disable"],
    noise_seed: Seed,
    steps: Steps,
    cfg: Cfg,
    sampler_name: SamplerName,
    scheduler: SchedulerName,
    positive: ConditioningRef,
    negative: ConditioningRef,
    latent_image: LatentRef,
    start_at_step: Annotated[int, Range(0, 10000)] = 0,
    end_at_step: Annotated[int, Range(0, 10000)] = 10000,
    return_with_leftover_noise: Literal["disable", "enable"] = "disable",
) -> LatentRef:
    """KSamplerAdvanced: run steps `start_at_step` to `end_at_step` of a `steps`-step schedule.

    With return_with_leftover_noise "disable" and an end before the last step, the result
    still holds the noise of the step it stopped at (ComfyUI denoises it fully there).
    """
    plan = SamplingPlan(steps, min(start_at_step, steps), min(end_at_step, steps), add_noise == "enable")
    return _sampler(ctx, model, positive, negative, latent_image, seed=noise_seed, cfg=cfg,
                    sampler_name=sampler_name, scheduler=scheduler, plan=plan)


def _resize_latent(samples: Any, method: str, width: int, height: int, crop: str) -> Any:
    import torch

    if crop == "center":
        old_width, old_height = samples.shape[-1], samples.shape[-2]
        ratio_old, ratio_new = old_width / old_height, width / height
        if ratio_old > ratio_new:
            keep = round(old_height * ratio_new)
            offset = (old_width - keep) // 2
            samples = samples[..., :, offset: offset + keep]
        elif ratio_old < ratio_new:
            keep = round(old_width / ratio_new)
            offset = (old_height - keep) // 2
            samples = samples[..., offset: offset + keep, :]
    return torch.nn.functional.interpolate(samples, size=(height, width), mode=method)


@node("comfy.latent_upscale", category="comfy", output="latent")
def latent_upscale(
    ctx: NodeContext, samples: LatentRef, upscale_method: LatentMethod = "nearest-exact",
    width: Annotated[int, Range(0, 16384), "0 keeps the aspect ratio of the height"] = 512,
    height: Annotated[int, Range(0, 16384), "0 keeps the aspect ratio of the width"] = 512,
    crop: Crop = "disabled",
) -> LatentRef:
    """LatentUpscale: resize a latent to an image size."""
    latent = _latent(ctx, samples)
    current = latent["samples"]
    if width == 0 and height == 0:
        return samples
    old_height, old_width = current.shape[-2] * 8, current.shape[-1] * 8
    width = width or max(64, round(old_width * height / old_height))
    height = height or max(64, round(old_height * width / old_width))
    resized = _resize_latent(current, upscale_method, width // 8, height // 8, crop)
    return _put_latent(ctx, {**latent, "samples": resized})


@node("comfy.latent_upscale_by", category="comfy", output="latent")
def latent_upscale_by(
    ctx: NodeContext, samples: LatentRef, upscale_method: LatentMethod = "nearest-exact",
    scale_by: Annotated[float, Range(0.01, 8)] = 1.5,
) -> LatentRef:
    """LatentUpscaleBy: resize a latent by a factor."""
    latent = _latent(ctx, samples)
    current = latent["samples"]
    width, height = round(current.shape[-1] * scale_by), round(current.shape[-2] * scale_by)
    return _put_latent(ctx, {**latent, "samples": _resize_latent(current, upscale_method, width, height, "disabled")})


# -- VAE -------------------------------------------------------------------------------------
@contextmanager
def _vae(handle: dict[str, Any], lane: str | None) -> Iterator[Any]:
    if "file" in handle:
        with models.VAES.using(PipelineHandle.of(handle["file"]).on_lane(lane)) as vae:
            yield vae
        return
    with models.checkpoint(handle, lane, "vae") as pipeline:
        yield pipeline.vae


def _processor(vae: Any) -> Any:
    from diffusers.image_processor import VaeImageProcessor

    return VaeImageProcessor(vae_scale_factor=2 ** (len(vae.config.block_out_channels) - 1))


@node("comfy.vae_decode", resources="gpu", category="comfy", output="image")
def vae_decode(ctx: NodeContext, samples: LatentRef, vae: VaeRef) -> Images:
    """VAEDecode: turn a latent into images."""
    import torch

    latent = _latent(ctx, samples)["samples"]
    with _vae(vae, ctx.device) as decoder, torch.no_grad():
        scaled = latent.to(decoder.device, decoder.dtype) / decoder.config.scaling_factor
        decoded = decoder.decode(scaled, return_dict=False)[0]
        pictures = _processor(decoder).postprocess(decoded, output_type="pil", do_denormalize=[True] * len(decoded))
    return [store_png(ctx, picture) for picture in pictures]


def _encode(ctx: NodeContext, pixels: list[ArtifactRef], vae: dict[str, Any], mask: Any = None,
            grow_mask_by: int = 0) -> dict[str, Any]:
    import torch

    pictures = _pil_batch(ctx, pixels)
    # ComfyUI crops to a multiple of 8 rather than resizing
    width, height = pictures[0].width // 8 * 8, pictures[0].height // 8 * 8
    if width == 0 or height == 0:
        raise NodeExecutionError("the image is smaller than 8 pixels", retryable=False, details={"port": "pixels"})
    pictures = [picture.crop((0, 0, width, height)) for picture in pictures]
    latent_mask = None
    with _vae(vae, ctx.device) as encoder, torch.no_grad():
        batch = _processor(encoder).preprocess(pictures, height=height, width=width)
        if mask is not None:
            mask = _sized_mask(mask, width, height)
            if grow_mask_by > 0:
                kernel = torch.ones(1, 1, grow_mask_by, grow_mask_by)
                grown = torch.nn.functional.conv2d(mask.round()[:, None], kernel, padding=grow_mask_by // 2)
                latent_mask = grown[:, 0, :height, :width].clamp(0, 1)
            else:
                latent_mask = mask.round()
            keep = (1 - mask.round())[:, None]
            batch = batch * keep  # masked pixels become mid-grey (0 in [-1, 1]), as ComfyUI does
        encoded = encoder.encode(batch.to(encoder.device, encoder.dtype)).latent_dist.mode()
        samples = (encoded * encoder.config.scaling_factor).to(torch.float32)
    return {"samples": samples, "noise_mask": latent_mask}


def _sized_mask(mask: Any, width: int, height: int) -> Any:
    import torch

    mask = mask.to(torch.float32)
    if mask.dim() == 2:
        mask = mask[None]
    return torch.nn.functional.interpolate(mask[:, None], size=(height, width), mode="bilinear")[:, 0]


@node("comfy.vae_encode", resources="gpu", category="comfy", output="latent")
def vae_encode(ctx: NodeContext, pixels: Images, vae: VaeRef) -> LatentRef:
    """VAEEncode: turn images into a latent (for image-to-image)."""
    return _put_latent(ctx, _encode(ctx, pixels, vae))


@node("comfy.vae_encode_for_inpaint", resources="gpu", category="comfy", output="latent")
def vae_encode_for_inpaint(
    ctx: NodeContext, pixels: Images, vae: VaeRef, mask: MaskRef,
    grow_mask_by: Annotated[int, Range(0, 64), "pixels to grow the mask by"] = 6,
) -> LatentRef:
    """VAEEncodeForInpaint: encode images with the masked part blanked, and keep the mask for the sampler."""
    return _put_latent(ctx, _encode(ctx, pixels, vae, ctx.load_tensor(mask), grow_mask_by))


# -- images ----------------------------------------------------------------------------------
_RESAMPLING = {
    "nearest-exact": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX, "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
}


@node("comfy.image_scale", category="comfy", output="image")
def image_scale(
    ctx: NodeContext, image: Images, upscale_method: ImageMethod = "nearest-exact",
    width: Annotated[int, Range(0, 16384), "0 keeps the aspect ratio of the height"] = 512,
    height: Annotated[int, Range(0, 16384), "0 keeps the aspect ratio of the width"] = 512,
    crop: Crop = "disabled",
) -> Images:
    """ImageScale: resize images to a size (center crop optional)."""
    resized = []
    for picture in _pil_batch(ctx, image):
        target_width = width or max(1, round(picture.width * height / picture.height))
        target_height = height or max(1, round(picture.height * width / picture.width))
        if crop == "center":
            picture = ImageOps.fit(picture, (target_width, target_height), _RESAMPLING[upscale_method])
        else:
            picture = picture.resize((target_width, target_height), _RESAMPLING[upscale_method])
        resized.append(store_png(ctx, picture))
    return resized


@node("comfy.image_scale_by", category="comfy", output="image")
def image_scale_by(
    ctx: NodeContext, image: Images, upscale_method: ImageMethod = "nearest-exact",
    scale_by: Annotated[float, Range(0.01, 8)] = 1.0,
) -> Images:
    """ImageScaleBy: resize images by a factor."""
    resized = []
    for picture in _pil_batch(ctx, image):
        size = (max(1, round(picture.width * scale_by)), max(1, round(picture.height * scale_by)))
        resized.append(store_png(ctx, picture.resize(size, _RESAMPLING[upscale_method])))
    return resized


@node("comfy.image_invert", category="comfy", output="image")
def image_invert(ctx: NodeContext, image: Images) -> Images:
    """ImageInvert: invert the colours of images."""
    return [store_png(ctx, ImageOps.invert(picture)) for picture in _pil_batch(ctx, image)]


def input_file(name: str) -> Path:
    """An image named in a workflow: a path, or a name in ComfyUI's input folder ($NODELOOM_COMFY_INPUT)."""
    given = Path(name).expanduser()
    folder = Path(os.environ.get(INPUT_ENV) or ".")
    found = given if given.is_absolute() else folder / name
    if not found.is_file():
        raise NodeExecutionError(
            f"image: no file {name!r} in {folder.resolve()} (set {INPUT_ENV} to ComfyUI's input folder, "
            "or give a path)",
            retryable=False,
            details={"port": "image", "name": name},
        )
    return found


def _open(name: str) -> Image.Image:
    try:
        with Image.open(input_file(name)) as opened:
            opened.load()
            return opened.copy()
    except OSError as error:
        raise NodeExecutionError(f"image: {name} is not an image Pillow can read: {error}", retryable=False,
                                 details={"port": "image"}) from None


@node("comfy.load_image", category="comfy")
def load_image(ctx: NodeContext, image: Annotated[str, "an image file in the input folder"]) -> LoadedImage:
    """LoadImage: an image file, and its alpha channel as a mask (1 where transparent)."""
    import numpy
    import torch

    picture = _open(image)
    if "A" in picture.getbands():
        alpha = numpy.asarray(picture.getchannel("A"), dtype=numpy.float32) / 255.0
        mask = 1.0 - torch.from_numpy(alpha)
    else:
        mask = torch.zeros(64, 64)
    return LoadedImage([store_png(ctx, picture.convert("RGB"))], ctx.put_tensor(mask))


@node("comfy.load_image_mask", category="comfy", output="mask")
def load_image_mask(
    ctx: NodeContext, image: Annotated[str, "an image file in the input folder"],
    channel: Literal["alpha", "red", "green", "blue"] = "alpha",
) -> MaskRef:
    """LoadImageMask: one channel of an image file as a mask (alpha: 1 where transparent)."""
    import numpy
    import torch

    picture = _open(image).convert("RGBA")
    band = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}[channel]
    values = torch.from_numpy(numpy.asarray(picture.getchannel(band), dtype=numpy.float32) / 255.0)
    return ctx.put_tensor(1.0 - values if channel == "alpha" else values)


@node("comfy.save_image", category="comfy", output="images")
def save_image(images: Images, filename_prefix: Annotated[str, "kept for ComfyUI; outputs are named by the graph"]
               = "ComfyUI") -> Images:
    """SaveImage: the images, as a graph output (written where the run writes its outputs)."""
    return images


@node("comfy.preview_image", category="comfy", output="images")
def preview_image(images: Images) -> Images:
    """PreviewImage: the images, as a graph output."""
    return images

