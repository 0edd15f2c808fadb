"""The marketing-video pipeline with its options: formats, brand, photo, diffusion, narration, a webhook.

`graph.json` beside this file is the whole pipeline on embedded defaults:

  1. `control.refine` around `video.storyboard`: the embedded SmolLM2 writes one caption per
     scene (a hook, one scene per benefit of the description, a call to action); a critic
     (the `storyboard` rules + the LLM's scores) keeps the good scenes and says what is wrong
     with the others (too long, a repeat, no product name or call to action); the writer
     rewrites only those, up to `refine_turns` turns; `video.finish_storyboard` replaces what
     still fails with captions built from the facts.
  2. one `image.scene_card` per scene, laid out by its role (hook, benefit, call to action),
     in the brand colours (or a palette from the product name), in a Unicode font;
  3. `audio.voice_over` speaks each caption with espeak-ng and times each scene to its line
     (without espeak-ng: one notice, and the video goes on without a voice);
     `audio.music_bed` synthesises a soft music bed; `audio.mix` ducks it under the voice;
  4. `video.slideshow` with a slow zoom or pan on each card and cross-fades; `video.subtitles`
     writes the .srt; `video.report` measures the result (report.json).

    python examples/marketing_video/make_video.py --product "Loom Lamp" --out out/ad
    python examples/marketing_video/make_video.py --format 9:16 --brand-colors "#1d3557,#e76f51" --out out/reel
    python examples/marketing_video/make_video.py --photo lamp.jpg --font /path/NotoSansCJK.ttc --out out/ad
    python examples/marketing_video/make_video.py --diffusion-model PATH --out out/ad
    python examples/marketing_video/make_video.py --webhook https://example.com/hook --out out/ad
    python examples/marketing_video/make_video.py --write-graph ad.json              # save, don't run

With --diffusion-model, each scene's picture comes from `image.generate` with the model in
PATH (a folder saved with diffusers' `save_pretrained`; try it without weights from a hub:
`python -m nodeloom.node_registry.image.tiny out/tiny-sd`, then PATH=out/tiny-sd/tiny-sd).
Defaults by device: on CUDA 768x432 and 20 steps; on a CPU 256x144 and 4 steps (the
picture is scaled up to the video's frame). See the README for measured timings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from nodeloom import Graph, LocalExecutor, RunConfig, load, save_outputs
from nodeloom.core import EventKind, InputRef, Link, RunEvent, RunStatus

HERE = Path(__file__).resolve().parent
FACTS = ("product", "description", "audience", "tone", "call_to_action", "scenes", "seed", "format", "resolution",
         "font", "narration", "voice", "refine_turns")
SCENE_PROMPT = ("{{ scene.caption }}. A {{ scene.role }} shot for an advert of {{ product }}, "
                "clean studio light, high detail")


def diffusion_defaults() -> tuple[int, tuple[int, int]]:
    """(steps, (width, height)) that finish: full size on CUDA, small and few steps on a CPU."""
    try:
        import torch

        if torch.cuda.is_available():
            return 20, (768, 432)
    except ImportError:
        pass
    return 4, (256, 144)


def build(diffusion_model: str | None = None, webhook: str | None = None, steps: int | None = None,
          image_size: tuple[int, int] | None = None, photo: bool = False, voice_output: bool = False) -> Graph:
    """The pipeline of graph.json, with the optional parts added."""
    graph = load(HERE / "graph.json")
    if photo:
        graph.input("photo", "Image", description="a product photo shown on the hook and benefit cards")
        graph.set_inputs("cards", photo=InputRef("photo"))
    if diffusion_model:
        default_steps, default_size = diffusion_defaults()
        width, height = image_size or default_size
        pipe = graph.add("image.pipeline", "pipeline", model=str(Path(diffusion_model).resolve()))
        prompts = graph.add("control.map", "prompts", node="text.template", items=Link("scenes", "scenes"),
                            item_input="scene", template=SCENE_PROMPT, product=InputRef("product"))
        generated = graph.add(
            "control.map", "generated", node="image.generate", items=prompts["results"], item_input="prompt",
            output="images", pipe=pipe["pipe"], steps=steps or default_steps, width=width, height=height,
            seed=InputRef("seed"),
        )
        # image.generate gives a list per prompt (batch_size 1): keep the first of each
        pictures = graph.add("control.map", "pictures", node="json.extract", items=generated["results"],
                             item_input="data", inputs={"path": "0"})
        graph.remove("cards")
        graph.set_inputs("video", images=pictures["results"], captions=Link("scenes", "captions"))
        graph.set_inputs("report", images=pictures["results"])
        graph.output("thumbnails", pictures["results"])
    if voice_output:
        graph.output("voice_over", Link("voice", "audio"))
    if webhook:
        title = graph.add("json.extract", "title", data=Link("scenes", "storyboard"), path="title")
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
    elif event.kind is EventKind.NODE_PROGRESS and event.node == "storyboard":
        print(f"  refine  {event.data.get('message', '')}", file=sys.stderr, flush=True)


def _size(text: str, parser: argparse.ArgumentParser) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        parser.error(f"--image-size takes WIDTHxHEIGHT, e.g. 256x144, not {text!r}")
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    facts = parser.add_argument_group("product facts and the video's shape (defaults: those of graph.json)")
    for name in ("product", "description", "audience", "tone"):
        facts.add_argument(f"--{name}")
    facts.add_argument("--call-to-action", dest="call_to_action", help="what the last scene asks, e.g. 'Order today'")
    facts.add_argument("--scenes", type=int, help="3-6: a hook, benefits, a call to action")
    facts.add_argument("--seed", type=int)
    facts.add_argument("--format", choices=("16:9", "9:16", "1:1", "4:5"), help="16:9 web, 9:16 Reels/Shorts")
    facts.add_argument("--resolution", type=int, help="pixels on the short side (720 or more)")
    facts.add_argument("--refine-turns", dest="refine_turns", type=int,
                       help="most write-critique turns for the storyboard (1: no refinement)")
    brand = parser.add_argument_group("brand")
    brand.add_argument("--brand-colors", metavar="#HEX,#HEX", help="brand colours, primary first")
    brand.add_argument("--photo", type=Path, help="a product photo for the hook and benefit cards")
    brand.add_argument("--font", help="a .ttf/.otf/.ttc font for cards and captions (default: Noto Sans)")
    sound = parser.add_argument_group("sound")
    sound.add_argument("--narration", choices=("auto", "on", "off"),
                       help="auto (default): a voice-over when espeak-ng is installed; on: require it; off: none")
    sound.add_argument("--voice", help="espeak-ng voice: en-us, en-gb, de, fr, es, ...")
    sound.add_argument("--voice-over", action="store_true",
                       help="require the voice-over (narration=on) and also save it as voice_over.wav")
    images = parser.add_argument_group("diffusion")
    images.add_argument("--diffusion-model", metavar="PATH", help="draw each scene with this diffusers model")
    images.add_argument("--steps", type=int, help="denoising steps (default: 20 on CUDA, 4 on a CPU)")
    images.add_argument("--image-size", metavar="WxH", help="picture size, multiples of 8 (default: 768x432 on "
                        "CUDA, 256x144 on a CPU; scaled up to the frame)")
    parser.add_argument("--webhook", metavar="URL", help="POST the result (title, video, storyboard) here")
    parser.add_argument("--allow-private-network", action="store_true",
                        help="let --webhook reach private or loopback addresses (for local testing)")
    parser.add_argument("--out", type=Path, default=Path("out/marketing-video"), help="output folder")
    parser.add_argument("--write-graph", type=Path, metavar="FILE", help="write the composed graph here and stop")
    args = parser.parse_args(argv)

    size = _size(args.image_size, parser) if args.image_size else None
    graph = build(args.diffusion_model, args.webhook, args.steps, size, photo=args.photo is not None,
                  voice_output=args.voice_over)
    if args.write_graph:
        args.write_graph.write_text(graph.dumps() + "\n")
        print(args.write_graph)
        return 0
    values: dict[str, Any] = {name: getattr(args, name) for name in FACTS if getattr(args, name) is not None}
    if args.voice_over:
        values["narration"] = "on"
    if args.brand_colors:
        values["brand_colors"] = [c.strip() for c in args.brand_colors.split(",") if c.strip()]
    config = RunConfig(out_dir=args.out, allow_private_network=args.allow_private_network)
    started = time.monotonic()
    with LocalExecutor() as executor:
        if args.photo is not None:
            values["photo"] = executor.artifacts.put_file(args.photo)
        result = executor.run(graph, values, config=config, on_event=_progress)
        files = save_outputs(result, args.out, executor.artifacts)
    print(f"{result.status.value} in {time.monotonic() - started:.1f}s")
    for name, written in files.items():
        print(f"  {name}: {written}")
    if "report" in result.outputs:
        report = result.outputs["report"]
        print(json.dumps({"seconds": report["video"]["seconds"], "scenes": report["scene_count"],
                          "narrated": report["narration"]["present"],
                          "caption_similarity_max": report["caption_similarity"]["max"]}))
    for error in result.errors():
        print(f"  {error['node']}: {error['message']}", file=sys.stderr)
    return 0 if result.status is RunStatus.SUCCEEDED else 3


if __name__ == "__main__":
    raise SystemExit(main())
