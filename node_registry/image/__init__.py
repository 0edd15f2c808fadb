"""The image pack: diffusion pipelines (load, generate, edit) and Pillow nodes (title cards, resizing, captions).

Diffusion nodes run on the GPU lane and share one per-process cache of loaded pipelines
(`PIPELINES`); torch and diffusers are imported only when a model is loaded.
"""

from nodeloom.node_registry.image.diffusion import PipeRef, edit, generate, load_diffusion_pipeline
from nodeloom.node_registry.image.drawing import overlay_text, resize_image, scene_card, title_card
from nodeloom.node_registry.image.pipelines import PIPELINES, PipelineCache, PipelineHandle, choose_handle

__all__ = [
    "PIPELINES",
    "PipeRef",
    "PipelineCache",
    "PipelineHandle",
    "choose_handle",
    "edit",
    "generate",
    "load_diffusion_pipeline",
    "overlay_text",
    "resize_image",
    "scene_card",
    "title_card",
]
