"""ComfyUI's sampler and scheduler names on diffusers schedulers, and the denoising loop.

A ComfyUI sampler (`euler`, `dpmpp_2m`, ...) is a diffusers scheduler class; a ComfyUI
scheduler (`normal`, `karras`, ...) is a setting of it (the sigma spacing). The loop is
the one diffusers' Stable Diffusion pipeline runs (the same noise from the same seed, the
same classifier-free guidance), extended with what ComfyUI's KSampler does: partial
denoising of a given latent (`denoise`, start and end steps), several conditionings
averaged, and a noise mask that keeps the unmasked part of the latent (inpainting).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nodeloom.core.errors import NodeExecutionError

#: ComfyUI sampler name -> (diffusers scheduler class, config overrides)
SAMPLERS: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm_2": ("KDPM2DiscreteScheduler", {}),
    "dpm_2_ancestral": ("KDPM2AncestralDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "dpmpp_sde": ("DPMSolverSDEScheduler", {}),
    "dpmpp_3m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}),
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "uni_pc": ("UniPCMultistepScheduler", {}),
    "uni_pc_bh2": ("UniPCMultistepScheduler", {"solver_type": "bh2"}),
    "deis": ("DEISMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}

#: ComfyUI scheduler name -> diffusers scheduler config overrides (the spacing of the sigmas)
SCHEDULERS: Mapping[str, Mapping[str, Any]] = {
    "normal": {},
    "karras": {"use_karras_sigmas": True},
    "exponential": {"use_exponential_sigmas": True},
    "beta": {"use_beta_sigmas": True},
    "sgm_uniform": {"timestep_spacing": "trailing"},
    "simple": {"timestep_spacing": "trailing"},
    "ddim_uniform": {"timestep_spacing": "leading"},
}


def make_scheduler(base_config: Mapping[str, Any], sampler_name: str, scheduler: str) -> Any:
    """A fresh diffusers scheduler for a ComfyUI (sampler, scheduler) pair, from the checkpoint's config."""
    import diffusers

    class_name, sampler_settings = SAMPLERS[sampler_name]
    scheduler_class = getattr(diffusers, class_name)
    settings = {**sampler_settings, **SCHEDULERS[scheduler]}
    accepted = inspect.signature(scheduler_class.__init__).parameters
    refused = [key for key in SCHEDULERS[scheduler] if key not in accepted]
    if refused:
        raise NodeExecutionError(
            f"scheduler {scheduler!r} does not apply to sampler {sampler_name!r} ({class_name} has no "
            f"{', '.join(refused)}); use scheduler 'normal' with it",
            retryable=False,
            details={"port": "scheduler"},
        )
    try:
        return scheduler_class.from_config(dict(base_config), **settings)
    except (ImportError, ValueError) as error:  # dpmpp_sde needs torchsde; beta sigmas need scipy
        raise NodeExecutionError(
            f"sampler {sampler_name!r} with scheduler {scheduler!r} is unavailable here: {str(error).strip()}",
            retryable=False,
            details={"port": "sampler_name"},
        ) from None


@dataclass(frozen=True, slots=True)
class SamplingPlan:
    """Which part of the schedule to run: `steps` steps, of which `start` to `end` run."""

    steps: int
    start: int
    end: int
    add_noise: bool


def ksampler_plan(steps: int, denoise: float) -> SamplingPlan:
    """KSampler: `steps` steps at the end of a schedule of `steps / denoise` steps (ComfyUI's meaning)."""
    total = steps if denoise >= 1 else max(steps, int(steps / denoise))
    return SamplingPlan(total, total - steps, total, True)


def sample(
    pipeline: Any,
    scheduler: Any,
    latent: Mapping[str, Any],
    positive: Any,
    negative: Any,
    *,
    seed: int,
    cfg: float,
    plan: SamplingPlan,
    on_step: Callable[[int, int], None],
) -> Any:
    """Denoise `latent["samples"]` with the pipeline's UNet; returns the new samples (CPU, float32)."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    unet = pipeline.unet
    device, dtype = unet.device, unet.dtype
    samples = latent["samples"].to(device=device, dtype=dtype)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    scheduler.set_timesteps(plan.steps, device=device)
    order = getattr(scheduler, "order", 1)
    timesteps = scheduler.timesteps[plan.start * order : plan.end * order]
    if len(timesteps) == 0:
        return latent["samples"]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(plan.start * order)
    noise = randn_tensor(samples.shape, generator=generator, device=device, dtype=dtype)
    original = samples
    if not plan.add_noise:
        x = samples
    elif plan.start == 0 and not samples.any():
        x = noise * scheduler.init_noise_sigma  # an empty latent: exactly diffusers' text-to-image start
    else:
        x = scheduler.add_noise(samples, noise, timesteps[:1])
    mask = _latent_mask(latent.get("noise_mask"), x)
    positives = _entries(positive, device, dtype)
    negatives = [] if cfg == 1.0 else _entries(negative, device, dtype)
    batch = x.shape[0]
    embeds = torch.cat([entry.expand(batch, -1, -1) for entry in (*negatives, *positives)])
    step_kwargs = _step_kwargs(scheduler, generator)
    for index, timestep in enumerate(timesteps):
        model_input = scheduler.scale_model_input(torch.cat([x] * (len(negatives) + len(positives))), timestep)
        with torch.no_grad():
            predicted = unet(model_input, timestep, encoder_hidden_states=embeds, return_dict=False)[0]
        chunks = predicted.chunk(len(negatives) + len(positives))
        conditioned = torch.stack(chunks[len(negatives):]).mean(0) if len(positives) > 1 else chunks[-1]
        if negatives:
            unconditioned = torch.stack(chunks[: len(negatives)]).mean(0) if len(negatives) > 1 else chunks[0]
            conditioned = unconditioned + cfg * (conditioned - unconditioned)
        x = scheduler.step(conditioned, timestep, x, **step_kwargs, return_dict=False)[0]
        if mask is not None:
            following = timesteps[index + 1 : index + 2]
            kept = scheduler.add_noise(original, noise, following) if len(following) else original
            x = kept * (1 - mask) + x * mask
        on_step(index + 1, len(timesteps))
    return x.to(device="cpu", dtype=torch.float32)


def _entries(conditioning: Any, device: Any, dtype: Any) -> list[Any]:
    """A conditioning tensor `[entries, tokens, width]` as its entries, each `[1, tokens, width]`."""
    tensor = conditioning.to(device=device, dtype=dtype)
    return list(tensor.split(1))


def _latent_mask(mask: Any, latents: Any) -> Any:
    if mask is None:
        return None
    import torch

    mask = mask.to(device=latents.device, dtype=latents.dtype)
    if mask.dim() == 2:
        mask = mask[None]
    mask = torch.nn.functional.interpolate(mask[:, None], size=latents.shape[-2:], mode="bilinear")
    return mask


def _step_kwargs(scheduler: Any, generator: Any) -> dict[str, Any]:
    """What diffusers' pipelines pass to `step`: the generator and eta 0, where the scheduler takes them."""
    accepted = inspect.signature(scheduler.step).parameters
    kwargs: dict[str, Any] = {}
    if "generator" in accepted:
        kwargs["generator"] = generator
    if "eta" in accepted:
        kwargs["eta"] = 0.0
    return kwargs
