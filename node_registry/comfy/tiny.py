"""A tiny Stable Diffusion checkpoint in ComfyUI's models layout, for trying and testing offline.

The image pack's tiny pipeline (`image/tiny.py`, random weights, built from configs) with
a VAE that scales by 8 as every Stable Diffusion VAE does (ComfyUI's latent nodes assume
it), saved under `<root>/checkpoints/tiny-sd` so `$NODELOOM_MODELS=<root>` finds it.

    python -m nodeloom.node_registry.comfy.tiny out/models
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from nodeloom.node_registry.image.tiny import save_tiny_pipeline

CHECKPOINT = "tiny-sd"


def save_tiny_checkpoint(root: str | Path) -> Path:
    """Write the tiny checkpoint to `<root>/checkpoints/tiny-sd` (a diffusers folder); returns that folder."""
    import diffusers as diffusers_module
    import torch

    diffusers: Any = diffusers_module  # its model classes are untyped
    target = Path(root) / "checkpoints" / CHECKPOINT
    with tempfile.TemporaryDirectory() as scratch:
        built = save_tiny_pipeline(scratch)
        torch.manual_seed(1)
        vae = diffusers.AutoencoderKL(
            block_out_channels=(32, 32, 32, 32), in_channels=3, out_channels=3, latent_channels=4,
            norm_num_groups=32, layers_per_block=1, sample_size=64,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        )
        shutil.rmtree(built / "vae")
        vae.save_pretrained(built / "vae")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(built, target)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m nodeloom.node_registry.comfy.tiny MODELS_FOLDER", file=sys.stderr)
        raise SystemExit(2)
    print(save_tiny_checkpoint(sys.argv[1]))
