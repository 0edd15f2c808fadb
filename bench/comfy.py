"""An imported ComfyUI text-to-image workflow against the same diffusers call made directly.

Imports tests/comfy_workflows/txt2img.api.json (CheckpointLoaderSimple, two CLIPTextEncode,
EmptyLatentImage, KSampler euler/normal, VAEDecode, SaveImage), runs it `--runs` times with
the local executor (cache off, a new seed each run), and, interleaved in the same process, the
same generation as one `StableDiffusionPipeline.__call__` on the same checkpoint (same prompt,
negative prompt, steps, guidance, size and seed), its image encoded as PNG as SaveImage stores
it. Prints the median per-image time of each, their ratio (target <= 1.05x), and how many
times the workflow loaded the checkpoint over all its runs (target 1).

The checkpoint is the tiny one built from configs (no download) unless `--models` names a
ComfyUI models folder and `--checkpoint` one of its checkpoints.

Usage: python bench/comfy.py [--runs 10] [--steps 20] [--size 256] [--threads N] [--models DIR --checkpoint NAME]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

WORKFLOW = Path(__file__).resolve().parent.parent / "tests" / "comfy_workflows" / "txt2img.api.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256, help="image width and height in pixels")
    parser.add_argument("--models", type=Path, default=None, help="a ComfyUI models folder [default: tiny, built]")
    parser.add_argument("--checkpoint", default="tiny-sd")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads [default: torch's]; 1 steadies the figures on a shared machine")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        models = args.models
        if models is None:
            from nodeloom.node_registry.comfy.tiny import save_tiny_checkpoint

            models = Path(scratch) / "models"
            save_tiny_checkpoint(models)
        os.environ["NODELOOM_MODELS"] = str(models)
        os.environ["NODELOOM_HOME"] = str(Path(scratch) / "home")
        measure(models, args)


def measure(models: Path, args: argparse.Namespace) -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    from nodeloom import comfy
    from nodeloom.executors import LocalExecutor
    from nodeloom.node_registry.comfy import CHECKPOINTS
    from nodeloom.node_registry.comfy.models import resolve
    from nodeloom.node_registry.comfy.sampling import make_scheduler
    from nodeloom.node_registry.image.pipelines import cuda_available

    prompt = json.loads(WORKFLOW.read_text())
    prompt["4"]["inputs"]["ckpt_name"] = args.checkpoint
    graph = comfy.load(prompt, name="txt2img")
    executor = LocalExecutor()
    device = "cuda" if cuda_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    direct = StableDiffusionPipeline.from_pretrained(  # type: ignore[no-untyped-call]
        resolve("checkpoints", args.checkpoint, "checkpoint"), dtype=dtype
    ).to(device)
    direct.set_progress_bar_config(disable=True)
    direct.scheduler = make_scheduler(direct.scheduler.config, "euler", "normal")
    texts = {name: graph.inputs[name].default for name in ("positive", "negative")}

    def run_workflow(seed: int) -> float:
        started = time.perf_counter()
        result = executor.run(graph, {"seed": seed, "steps": args.steps, "width": args.size, "height": args.size},
                              use_cache=False)
        elapsed = time.perf_counter() - started
        if not result.ok:
            sys.exit(f"the workflow failed: {result.errors()}")
        return elapsed

    def run_direct(seed: int) -> float:
        started = time.perf_counter()
        image = direct(prompt=texts["positive"], negative_prompt=texts["negative"], num_inference_steps=args.steps,
                       guidance_scale=prompt["3"]["inputs"]["cfg"], width=args.size, height=args.size,
                       generator=torch.Generator("cpu").manual_seed(seed)).images[0]
        image.save(io.BytesIO(), format="PNG")
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    run_workflow(0)  # warm both: the first workflow run loads the checkpoint, the first call compiles kernels
    run_direct(0)
    ours, theirs = [], []
    for seed in range(1, args.runs + 1):  # interleaved, so a busy machine slows both alike
        ours.append(run_workflow(seed))
        theirs.append(run_direct(seed))
    workflow_median, direct_median = statistics.median(ours), statistics.median(theirs)
    print(f"checkpoint {args.checkpoint} on {device}, {args.size}x{args.size}, {args.steps} steps, "
          f"{args.runs} runs each (medians)")
    print(f"  imported ComfyUI workflow : {workflow_median * 1000:9.1f} ms/image")
    print(f"  diffusers pipeline call   : {direct_median * 1000:9.1f} ms/image")
    print(f"  ratio                     : {workflow_median / direct_median:9.3f}x  (target <= 1.05x)")
    print(f"  checkpoint loads in {args.runs + 1} workflow runs: {CHECKPOINTS.loads}  (target 1)")


if __name__ == "__main__":
    main()
