"""What the comfy tests share: a ComfyUI models folder with the tiny checkpoint, a LoRA and a VAE,
an input folder with the images the workflows load, and the fixture workflows' paths.

The checkpoint is the tiny Stable Diffusion pipeline built from configs (no download); the
LoRA is made here by hand in the diffusers/PEFT layout (random low-rank pairs for a few
UNet and text-encoder projections); the VAE is a copy of the checkpoint's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

WORKFLOWS = Path(__file__).parent / "comfy_workflows"
#: the fixture workflows that run (each in both formats); custom_node is refused
RUNNABLE = ("txt2img", "img2img", "inpaint", "lora", "hires_fix", "upscale")
#: the image size each workflow's SaveImage writes
SIZES = {"txt2img": (64, 64), "img2img": (64, 64), "inpaint": (64, 64), "lora": (64, 64), "hires_fix": (96, 96),
         "upscale": (128, 128)}
LORA = "tiny-style.safetensors"
#: the tiny checkpoint and VAE again as single files in the original Stable Diffusion layout
SINGLE_CHECKPOINT = "tiny-sd-single.safetensors"
SINGLE_VAE = "tiny-vae-single.safetensors"
LORA_MODULES = {
    "unet": ("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k", "mid_block.resnets.0.conv1",
             "up_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"),
    # named as diffusers names them (with "text_model."), as LoRA files do
    "text_encoder": ("text_model.encoder.layers.1.self_attn.q_proj", "text_model.encoder.layers.1.mlp.fc1"),
}


def build_models(root: Path) -> Path:
    """`root/models` in ComfyUI's layout and `root/input` with photo.png and hole.png; returns `root`."""
    from PIL import Image
    from safetensors.torch import save_file

    from nodeloom.node_registry.comfy.tiny import save_tiny_checkpoint

    models = root / "models"
    checkpoint = save_tiny_checkpoint(models)
    shutil.copytree(checkpoint / "vae", models / "vae" / "tiny-vae")
    save_single_files(checkpoint, models)
    (models / "loras").mkdir(parents=True)
    save_file(tiny_lora(checkpoint), str(models / "loras" / LORA))
    inputs = root / "input"
    inputs.mkdir()
    photo = Image.new("RGB", (64, 64))
    photo.putdata([(4 * x, 4 * y, 128) for y in range(64) for x in range(64)])
    photo.save(inputs / "photo.png")
    hole = Image.new("RGBA", (64, 64), (255, 255, 255, 255))
    hole.paste((0, 0, 0, 0), (16, 16, 48, 48))  # transparent: the part to repaint
    hole.save(inputs / "hole.png")
    return root


def save_single_files(checkpoint: Path, models: Path) -> None:
    """The checkpoint as one original-layout file, and its VAE as another, each with its config folder.

    As ComfyUI users hold them: `checkpoints/<name>.safetensors` and `vae/<name>.safetensors`;
    the configs (no weights) go to `configs/<stem>/`, where the comfy pack looks for them.
    """
    from safetensors.torch import save_file

    from tests.ldm_checkpoint import save_ldm_checkpoint, vae_to_ldm

    save_ldm_checkpoint(checkpoint, models / "checkpoints" / SINGLE_CHECKPOINT)
    shutil.copytree(checkpoint, models / "configs" / Path(SINGLE_CHECKPOINT).stem,
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    save_file(vae_to_ldm(checkpoint / "vae"), str(models / "vae" / SINGLE_VAE))
    vae_config = models / "configs" / Path(SINGLE_VAE).stem
    vae_config.mkdir(parents=True)
    shutil.copy(checkpoint / "vae" / "config.json", vae_config / "config.json")


def tiny_lora(checkpoint: Path, rank: int = 4) -> dict[str, object]:
    """Random LoRA pairs (`lora_A` down, `lora_B` up) for the modules of `LORA_MODULES`."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    components = {"unet": UNet2DConditionModel.from_pretrained(checkpoint / "unet"),
                  "text_encoder": CLIPTextModel.from_pretrained(checkpoint / "text_encoder")}
    generator = torch.Generator().manual_seed(3)
    tensors: dict[str, object] = {}
    for prefix, names in LORA_MODULES.items():
        modules = dict(components[prefix].named_modules())
        for name in names:
            weight = (modules.get(name) or modules[name.removeprefix("text_model.")]).weight
            inner = int(weight[0].numel())
            tensors[f"{prefix}.{name}.lora_A.weight"] = torch.randn(rank, inner, generator=generator) * 0.5
            tensors[f"{prefix}.{name}.lora_B.weight"] = torch.randn(weight.shape[0], rank, generator=generator) * 0.5
            tensors[f"{prefix}.{name}.alpha"] = torch.tensor(float(rank))
    return tensors
