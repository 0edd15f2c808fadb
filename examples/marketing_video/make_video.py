"""The marketing-video pipeline with its options: voice-over, a diffusion model, a webhook.

`graph.json` beside this file is the pipeline on embedded defaults (the SmolLM2 storyboard,
title cards, captions). This script loads it, adds what the options ask for, and runs it:

    python examples/marketing_video/make_video.py --product "Loom Lamp" --out out/ad
    python examples/marketing_video/make_video.py --voice-over --out out/ad          # needs espeak-ng
    python examples/marketing_video/make_video.py --diffusion-model PATH --out out/ad
    python examples/marketing_video/make_video.py --webhook https://example.com/hook --out out/ad
    python examples/marketing_video/make_video.py --write-graph ad.json              # save, don't run

With --diffusion-model, each scene's picture comes from `image.generate` with the model in
PATH (a folder saved with diffusers' `save_pretrained`; try it without weights from a hub:
`python -m nodeloom.node_registry.image.tiny out/tiny-sd`, then PATH=out/tiny-sd/tiny-sd).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nodeloom import Graph, LocalExecutor, RunConfig, load, save_outputs
from nodeloom.core import EventKind, InputRef, Link, RunEvent, RunStatus

HERE = Path(__file__).resolve().parent


def build(voice_over: bool = False, diffusion_model: str | None = None, webhook: str | None = None,
          steps: int = 20, image_size: tuple[int, int] = (512, 288)) -> Graph:
    """The pipeline of graph.json, with the optional parts added."""
    graph = load(HERE / "graph.json")
    if diffusion_model:
        pipe = graph.add("image.pipeline", "pipeline", model=str(Path(diffusion_model).resolve()))
        generated = graph.add(
            "control.map", "generated", node="image.generate", items=Link("visual_prompts", "results"),
            item_input="prompt", output="images", pipe=pipe["pipe"], steps=steps,
            width=image_size[0], height=image_size[1], seed=InputRef("seed"),
        )
        # image.generate gives a list per prompt (batch_size 1): keep the first of each
        pictures = graph.add("control.map", "pictures", node="json.extract", items=generated["results"],
                             item_input="data", inputs={"path": "0"})
        graph.remove("cards")
        graph.set_inputs("video", images=pictures["results"])
        graph.output("thumbnails", pictures["results"])
    if voice_over:
        narration = graph.add("text.join", "narration", items=graph.nodes["video"].inputs["captions"], separator=". ")
        speech = graph.add("audio.speak", "speech", text=narration["text"])
        graph.set_inputs("video", audio=speech["audio"])
        graph.output("voice_over", speech["audio"])
    if webhook:
        title = graph.add("json.extract", "title", data=graph.nodes["scene_list"].inputs["data"], path="title")
        payload = graph.add("json.object", "payload", title=title["value"],
                            video=graph.outputs["video"], storyboard=graph.outputs["storyboard"])
        publish = graph.add("webhook.post", "publish", url=webhook, payload=payload["data"])
        graph.output("webhook_status", publish["status"])
    return graph


def _progress(event: RunEvent) -> None:
    if event.kind in (EventKind.NODE_DONE, EventKind.NODE_CACHED, EventKind.NODE_FAILED):
        word = {EventKind.NODE_DONE: "done", EventKind.NODE_CACHED: "cached", EventKind.NODE_FAILED: "FAILED"}
        extra = f": {event.data['error']['message']}" if event.kind is EventKind.NODE_FAILED else ""
        print(f"  {word[event.kind]:<7} {event.node}{extra}", file=sys.stderr, flush=True)
    elif event.kind is EventKind.NODE_STARTED:
        print(f"  start   {event.node}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    facts = parser.add_argument_group("product facts (defaults: those of graph.json)")
    for name in ("product", "description", "audience", "tone"):
        facts.add_argument(f"--{name}")
    facts.add_argument("--scenes", type=int)
    facts.add_argument("--seed", type=int)
    parser.add_argument("--voice-over", action="store_true", help="speak the captions (needs espeak-ng)")
    parser.add_argument("--diffusion-model", metavar="PATH", help="draw each scene with this diffusers model")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps with --diffusion-model")
    parser.add_argument("--image-size", default="512x288", metavar="WxH",
                        help="picture size with --diffusion-model (multiples of 8)")
    parser.add_argument("--webhook", metavar="URL", help="POST the result (title, video, storyboard) here")
    parser.add_argument("--allow-private-network", action="store_true",
                        help="let --webhook reach private or loopback addresses (for local testing)")
    parser.add_argument("--out", type=Path, default=Path("out/marketing-video"), help="output folder")
    parser.add_argument("--write-graph", type=Path, metavar="FILE", help="write the composed graph here and stop")
    args = parser.parse_args(argv)

    try:
        width, height = (int(part) for part in args.image_size.lower().split("x"))
    except ValueError:
        parser.error(f"--image-size takes WIDTHxHEIGHT, e.g. 512x288, not {args.image_size!r}")
    graph = build(args.voice_over, args.diffusion_model, args.webhook, args.steps, (width, height))
    if args.write_graph:
        args.write_graph.write_text(graph.dumps() + "\n")
        print(args.write_graph)
        return 0
    values = {name: getattr(args, name) for name in ("product", "description", "audience", "tone", "scenes", "seed")
              if getattr(args, name) is not None}
    config = RunConfig(out_dir=args.out, allow_private_network=args.allow_private_network)
    started = time.monotonic()
    with LocalExecutor() as executor:
        result = executor.run(graph, values, config=config, on_event=_progress)
        files = save_outputs(result, args.out, executor.artifacts)
    print(f"{result.status.value} in {time.monotonic() - started:.1f}s")
    for name, written in files.items():
        print(f"  {name}: {written}")
    for error in result.errors():
        print(f"  {error['node']}: {error['message']}", file=sys.stderr)
    return 0 if result.status is RunStatus.SUCCEEDED else 3


if __name__ == "__main__":
    raise SystemExit(main())
