"""ComfyUI's node classes as the comfy pack runs them: type name, widget order, outputs.

What an importer of ComfyUI files needs to know of each class: the nodeloom node type,
the order of `widgets_values` in the UI format (with the slots that are UI state only,
such as the seed's `control_after_generate`), and the output names by slot index.
"""

from __future__ import annotations

from dataclasses import dataclass

#: a `widgets_values` slot that holds UI state, not an input (after a seed; an upload button)
UI_ONLY = ("control_after_generate", "upload")


@dataclass(frozen=True, slots=True)
class ComfyClass:
    """One ComfyUI node class: its name, its nodeloom type, its widgets and its outputs."""

    class_type: str
    node_type: str
    widgets: tuple[str, ...]
    outputs: tuple[str, ...]
    display_name: str

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(name for name in self.widgets if name not in UI_ONLY)


_SEED = ("seed", "control_after_generate")
_SAMPLER = ("steps", "cfg", "sampler_name", "scheduler")

CLASSES: dict[str, ComfyClass] = {
    entry.class_type: entry
    for entry in (
        ComfyClass("CheckpointLoaderSimple", "comfy.checkpoint_loader_simple", ("ckpt_name",),
                   ("model", "clip", "vae"), "Load Checkpoint"),
        ComfyClass("VAELoader", "comfy.vae_loader", ("vae_name",), ("vae",), "Load VAE"),
        ComfyClass("LoraLoader", "comfy.lora_loader", ("lora_name", "strength_model", "strength_clip"),
                   ("model", "clip"), "Load LoRA"),
        ComfyClass("CLIPSetLastLayer", "comfy.clip_set_last_layer", ("stop_at_clip_layer",), ("clip",),
                   "CLIP Set Last Layer"),
        ComfyClass("CLIPTextEncode", "comfy.clip_text_encode", ("text",), ("conditioning",),
                   "CLIP Text Encode (Prompt)"),
        ComfyClass("ConditioningCombine", "comfy.conditioning_combine", (), ("conditioning",),
                   "Conditioning (Combine)"),
        ComfyClass("EmptyLatentImage", "comfy.empty_latent_image", ("width", "height", "batch_size"), ("latent",),
                   "Empty Latent Image"),
        ComfyClass("KSampler", "comfy.ksampler", (*_SEED, *_SAMPLER, "denoise"), ("latent",), "KSampler"),
        ComfyClass("KSamplerAdvanced", "comfy.ksampler_advanced",
                   ("add_noise", "noise_seed", "control_after_generate", *_SAMPLER, "start_at_step", "end_at_step",
                    "return_with_leftover_noise"), ("latent",), "KSampler (Advanced)"),
        ComfyClass("VAEDecode", "comfy.vae_decode", (), ("image",), "VAE Decode"),
        ComfyClass("VAEEncode", "comfy.vae_encode", (), ("latent",), "VAE Encode"),
        ComfyClass("VAEEncodeForInpaint", "comfy.vae_encode_for_inpaint", ("grow_mask_by",), ("latent",),
                   "VAE Encode (for Inpainting)"),
        ComfyClass("LatentUpscale", "comfy.latent_upscale", ("upscale_method", "width", "height", "crop"),
                   ("latent",), "Upscale Latent"),
        ComfyClass("LatentUpscaleBy", "comfy.latent_upscale_by", ("upscale_method", "scale_by"), ("latent",),
                   "Upscale Latent By"),
        ComfyClass("ImageScale", "comfy.image_scale", ("upscale_method", "width", "height", "crop"), ("image",),
                   "Upscale Image"),
        ComfyClass("ImageScaleBy", "comfy.image_scale_by", ("upscale_method", "scale_by"), ("image",),
                   "Upscale Image By"),
        ComfyClass("ImageInvert", "comfy.image_invert", (), ("image",), "Invert Image"),
        ComfyClass("LoadImage", "comfy.load_image", ("image", "upload"), ("image", "mask"), "Load Image"),
        ComfyClass("LoadImageMask", "comfy.load_image_mask", ("image", "channel", "upload"), ("mask",),
                   "Load Image (as Mask)"),
        ComfyClass("SaveImage", "comfy.save_image", ("filename_prefix",), ("images",), "Save Image"),
        ComfyClass("PreviewImage", "comfy.preview_image", (), ("images",), "Preview Image"),
    )
}

#: nodeloom node type -> ComfyUI class
BY_NODE_TYPE: dict[str, ComfyClass] = {entry.node_type: entry for entry in CLASSES.values()}
