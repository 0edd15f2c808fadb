"""Write a diffusers Stable Diffusion 1.x folder as one original-layout (LDM) `.safetensors` checkpoint.

ComfyUI users hold checkpoints as single files in the original Stable Diffusion layout
(`model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`); the
comfy pack loads them with diffusers' `from_single_file` and a local config folder. The
tests make such a file from the tiny pipeline here (the layout's names are the published
Stable Diffusion ones, written out for the UNet, VAE and CLIP text encoder of SD 1.x), so
the single-file path runs on real weights whose folder twin is at hand to compare with.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename(key: str, prefixes: list[tuple[str, str]], inner: dict[str, str]) -> str:
    """`key` with its longest matching diffusers prefix replaced, and the part after it by `inner`."""
    for diffusers_prefix, ldm_prefix in sorted(prefixes, key=lambda pair: -len(pair[0])):
        if key == diffusers_prefix or key.startswith(diffusers_prefix + "."):
            rest = key[len(diffusers_prefix):]
            for old, new in inner.items():
                if rest.startswith(f".{old}."):
                    rest = f".{new}" + rest[len(old) + 1:]
                    break
            return ldm_prefix + rest
    return key


def _unet_prefixes(config: dict[str, Any]) -> list[tuple[str, str]]:
    layers = int(config["layers_per_block"])
    blocks = len(config["block_out_channels"])
    pairs = [("time_embedding.linear_1", "time_embed.0"), ("time_embedding.linear_2", "time_embed.2"),
             ("conv_in", "input_blocks.0.0"), ("conv_norm_out", "out.0"), ("conv_out", "out.2"),
             ("mid_block.attentions.0", "middle_block.1")]
    pairs += [(f"mid_block.resnets.{j}", f"middle_block.{2 * j}") for j in range(2)]
    for i in range(blocks):
        for j in range(layers):
            index = (layers + 1) * i + j + 1
            pairs += [(f"down_blocks.{i}.resnets.{j}", f"input_blocks.{index}.0"),
                      (f"down_blocks.{i}.attentions.{j}", f"input_blocks.{index}.1")]
        pairs.append((f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{(layers + 1) * (i + 1)}.0.op"))
        has_attention = config["up_block_types"][i].startswith("CrossAttn")
        for j in range(layers + 1):
            index = (layers + 1) * i + j
            pairs += [(f"up_blocks.{i}.resnets.{j}", f"output_blocks.{index}.0"),
                      (f"up_blocks.{i}.attentions.{j}", f"output_blocks.{index}.1")]
        upsampler = f"output_blocks.{(layers + 1) * i + layers}.{2 if has_attention else 1}"
        pairs.append((f"up_blocks.{i}.upsamplers.0", upsampler))
    return pairs


def _vae_prefixes(config: dict[str, Any]) -> list[tuple[str, str]]:
    blocks = len(config["block_out_channels"])
    pairs = [("encoder.conv_norm_out", "encoder.norm_out"), ("decoder.conv_norm_out", "decoder.norm_out")]
    for part in ("encoder", "decoder"):
        pairs += [(f"{part}.mid_block.resnets.{j}", f"{part}.mid.block_{j + 1}") for j in range(2)]
        pairs.append((f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1"))
    for i in range(blocks):
        pairs += [(f"encoder.down_blocks.{i}.resnets", f"encoder.down.{i}.block"),
                  (f"encoder.down_blocks.{i}.downsamplers.0", f"encoder.down.{i}.downsample"),
                  (f"decoder.up_blocks.{i}.resnets", f"decoder.up.{blocks - 1 - i}.block"),
                  (f"decoder.up_blocks.{i}.upsamplers.0", f"decoder.up.{blocks - 1 - i}.upsample")]
    return pairs


def _vae_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers `AutoencoderKL` state dict in the original layout (names, 1x1-conv attention)."""
    prefixes = _vae_prefixes(config)
    converted = {}
    for key, tensor in state.items():
        new = _rename(key, prefixes, _VAE_ATTENTION)
        new = re.sub(r"\.conv_shortcut\.", ".nin_shortcut.", new)
        if ".mid.attn_1." in new and new.endswith(".weight") and tensor.dim() == 2:
            tensor = tensor[:, :, None, None]  # the original attention is 1x1 convolutions
        converted[new] = tensor
    return converted


def vae_to_ldm(vae_folder: Path) -> dict[str, Any]:
    """A diffusers VAE folder's weights in the original layout, as a standalone VAE file holds them."""
    from safetensors.torch import load_file

    (file,) = vae_folder.glob("*.safetensors")
    config = json.loads((vae_folder / "config.json").read_text())
    return {key: tensor.contiguous() for key, tensor in _vae_to_ldm(load_file(str(file)), config).items()}


def save_ldm_checkpoint(pipeline_folder: Path, target: Path) -> Path:
    """Write `pipeline_folder`'s UNet, VAE and text encoder to `target` in the original SD 1.x layout."""
    from safetensors.torch import load_file, save_file

    def weights(component: str) -> dict[str, Any]:
        (file,) = (pipeline_folder / component).glob("*.safetensors")
        return load_file(str(file))

    def config(component: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((pipeline_folder / component / "config.json").read_text())
        return loaded

    unet_prefixes = _unet_prefixes(config("unet"))
    checkpoint = {"model.diffusion_model." + _rename(key, unet_prefixes, _UNET_RESNET): tensor
                  for key, tensor in weights("unet").items()}
    checkpoint |= {"first_stage_model." + key: tensor
                   for key, tensor in _vae_to_ldm(weights("vae"), config("vae")).items()}
    # transformers 5 saves CLIP without the "text_model." level that SD 1.x files name
    checkpoint |= {"cond_stage_model.transformer.text_model." + key.removeprefix("text_model."): tensor
                   for key, tensor in weights("text_encoder").items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: tensor.contiguous() for key, tensor in checkpoint.items()}, str(target))
    return target
