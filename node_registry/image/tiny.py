"""A tiny Stable Diffusion pipeline built from configs, for trying and testing offline.

Model hubs are not reachable everywhere nodeloom runs. This builds a real diffusers
`StableDiffusionPipeline` with random weights (a 2-layer CLIP text encoder, a small UNet and
VAE, a tokenizer over a few dozen tokens) and saves it with `save_pretrained`, so the image
nodes can load it through the same `from_pretrained` path as a real model. Its pictures are
noise, made in milliseconds per step.

    python -m nodeloom.node_registry.image.tiny out/tiny-sd
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def save_tiny_pipeline(folder: str | Path) -> Path:
    """Build the tiny pipeline and save it under `folder`; returns the model folder to load."""
    import diffusers as diffusers_module
    import torch
    import transformers

    diffusers: Any = diffusers_module  # its model classes are untyped

    root = Path(folder)
    tokens = ["<|startoftext|>", "<|endoftext|>", *LETTERS, *(c + "</w>" for c in LETTERS), ".</w>", ",</w>", "!</w>"]
    vocabulary = root / "vocabulary"
    vocabulary.mkdir(parents=True, exist_ok=True)
    (vocabulary / "vocab.json").write_text(json.dumps({token: index for index, token in enumerate(tokens)}))
    (vocabulary / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.CLIPTokenizer.from_pretrained(vocabulary, model_max_length=16)
    torch.manual_seed(0)
    text_encoder = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=16, projection_dim=32, layer_norm_eps=1e-5,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=32, attention_head_dim=8,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=64,
    )
    pipeline = diffusers.StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=diffusers.EulerDiscreteScheduler(steps_offset=1), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    model = root / "tiny-sd"
    pipeline.save_pretrained(model)
    return model


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m nodeloom.node_registry.image.tiny FOLDER", file=sys.stderr)
        raise SystemExit(2)
    print(save_tiny_pipeline(sys.argv[1]))
