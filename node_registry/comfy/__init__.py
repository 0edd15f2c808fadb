"""The comfy pack: ComfyUI's core Stable Diffusion nodes on diffusers and torch.

One node per ComfyUI class (`CLASSES` maps `KSampler` to `comfy.ksampler`, ...), with
ComfyUI's input names, so `nodeloom import-comfy` turns a workflow into a graph node for
node. Checkpoints, LoRAs and VAEs are found in `$NODELOOM_MODELS` (ComfyUI's `models/`
layout); torch and diffusers are imported only when a node runs.
"""

from nodeloom.node_registry.comfy.classes import BY_NODE_TYPE, CLASSES, ComfyClass
from nodeloom.node_registry.comfy.models import CHECKPOINTS, MODELS_ENV, VAES, models_root
from nodeloom.node_registry.comfy.nodes import (
    checkpoint_loader_simple,
    clip_set_last_layer,
    clip_text_encode,
    conditioning_combine,
    empty_latent_image,
    image_invert,
    image_scale,
    image_scale_by,
    ksampler,
    ksampler_advanced,
    latent_upscale,
    latent_upscale_by,
    load_image,
    load_image_mask,
    lora_loader,
    preview_image,
    save_image,
    vae_decode,
    vae_encode,
    vae_encode_for_inpaint,
    vae_loader,
)
from nodeloom.node_registry.comfy.sampling import SAMPLERS, SCHEDULERS

__all__ = [
    "BY_NODE_TYPE",
    "CHECKPOINTS",
    "CLASSES",
    "MODELS_ENV",
    "SAMPLERS",
    "SCHEDULERS",
    "VAES",
    "ComfyClass",
    "checkpoint_loader_simple",
    "clip_set_last_layer",
    "clip_text_encode",
    "conditioning_combine",
    "empty_latent_image",
    "image_invert",
    "image_scale",
    "image_scale_by",
    "ksampler",
    "ksampler_advanced",
    "latent_upscale",
    "latent_upscale_by",
    "load_image",
    "load_image_mask",
    "lora_loader",
    "models_root",
    "preview_image",
    "save_image",
    "vae_decode",
    "vae_encode",
    "vae_encode_for_inpaint",
    "vae_loader",
]
