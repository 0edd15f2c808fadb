"""Does critique → refine beat plain resampling? The storyboard writer on the embedded model.

For each product (22 of them, none used to tune the writer or the critic), the storyboard
writer (`video.storyboard`, SmolLM2-135M) runs:

- **critique**: turn 1, then up to N-1 more turns, each with the instruction the storyboard
  critic (`StoryboardRules`, the `storyboard` rule of `control.refine`) rewrote: good scenes
  kept, each failing scene drawn afresh from its first prompt with another seed; the loop
  stops when the critic passes every check (as `control.refine` does at threshold 10);
- **resample** (the baseline): N storyboards with the same first instruction and N seeds.

Turn 1 is the same storyboard in both. At equal N both arms call the writer (the generator)
at most N times; a critique turn draws only its failing scenes, so the critique arm makes
fewer LLM calls (both counts are printed) and is never given more drafts than resampling.

Each storyboard is scored by an **independent rule scorer** (not the critic): captions of 2-8
words and at most 42 characters, no two captions alike by character similarity (difflib ratio
< 0.6), the product named, the call to action in the last scene, clean text (letters, no
echoed labels). It prints, for N = 1, 2, 4, the mean
best-of-N score of each method and the share of products each improved over turn 1.

    .venv/bin/python bench/refine.py                 # 22 products, 3 scenes, N up to 4
    .venv/bin/python bench/refine.py --products 5 --scenes 4
    .venv/bin/python bench/refine.py --products-file bench/refine_dev_products.json --verbose   # tuning set
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nodeloom.core.artifacts import LocalArtifactStore
from nodeloom.core.context import NodeContext
from nodeloom.node_registry.video.storyboard import Facts, StoryboardRules, write_storyboard

PRODUCTS = [
    Facts("Brewly", "A kettle that heats water to the exact degree your tea needs and keeps it warm for an hour.",
          "tea lovers", "calm", "Brew better today"),
    Facts("TrailPack 30", "A hiking backpack that weighs under a kilo, sheds rain and carries a full day's kit.",
          "weekend hikers", "bold", "Pack yours now"),
    Facts("Nimbus Pillow", "A pillow that stays cool all night and keeps its shape for years.",
          "light sleepers", "warm", "Sleep on it tonight"),
    Facts("Sprout Box", "A kitchen garden that grows herbs indoors, waters itself and needs no soil.",
          "city cooks", "playful", "Start growing today"),
    Facts("Glide Pen", "A fountain pen that never leaks, writes on any paper and refills in seconds.",
          "people who love writing", "elegant", "Write with Glide"),
    Facts("PawTrack", "A dog collar that tracks walks, finds a lost dog and lasts a month per charge.",
          "dog owners", "friendly", "Get PawTrack now"),
    Facts("Aura Buds", "Wireless earbuds that cancel noise, last ten hours and fit any ear.",
          "commuters", "bold", "Hear the difference"),
    Facts("Crisp Air", "An air purifier that removes pollen and smoke, runs silently and fits on a shelf.",
          "allergy sufferers", "calm", "Breathe easy today"),
    Facts("FoldBike", "A city bike that folds in ten seconds, fits under a desk and climbs hills with ease.",
          "city commuters", "energetic", "Ride one today"),
    Facts("Ledger Lite", "An app that tracks spending, splits bills with friends and warns before you overspend.",
          "students", "friendly", "Download it free"),
    Facts("Ember Mug", "A mug that keeps coffee at your chosen temperature for hours.",
          "busy parents", "warm", "Order your mug"),
    Facts("SnapFrame", "A digital photo frame that shows new family photos the moment they are sent.",
          "grandparents", "warm", "Give SnapFrame"),
    Facts("ZenMat", "A yoga mat that grips on any floor, cleans in seconds and rolls up small.",
          "yoga beginners", "calm", "Roll out today"),
    Facts("Volt Charger", "A charger that fills a phone in twenty minutes and powers three devices at once.",
          "travellers", "bold", "Charge faster now"),
    Facts("Lumen Shades", "Window blinds that open with the sunrise and close at dusk on their own.",
          "homeowners", "calm", "See Lumen Shades"),
    Facts("Chef's Scale", "A kitchen scale that reads recipes aloud and weighs to the gram.",
          "home bakers", "playful", "Bake with it today"),
    Facts("AquaSense", "A smart bottle that glows when it is time to drink and tracks every sip.",
          "office workers", "friendly", "Stay hydrated now"),
    Facts("Quill Notes", "A notebook whose pages scan to the cloud and wipe clean for reuse.",
          "students", "smart", "Get your notebook"),
    Facts("Hearth Heater", "A space heater that warms a room in minutes and switches off if it tips over.",
          "renters", "warm", "Stay warm today"),
    Facts("Pixel Cam", "A pocket camera that shoots sharp photos at night and shares them instantly.",
          "travel bloggers", "bold", "Shoot with Pixel Cam"),
    Facts("SoleFit", "Running shoes that cushion every stride and weigh less than an apple.",
          "new runners", "energetic", "Run in SoleFit"),
    Facts("Tidy Bot", "A robot vacuum that maps your home, avoids cables and empties itself.",
          "busy families", "friendly", "Meet Tidy Bot today"),
]
FIRST_INSTRUCTION = "Tone: {tone}."
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_LABEL = re.compile(r"\b(scene|caption|benefit|hook|tone|words?)\b\s*:?", re.IGNORECASE)


def independent_score(board: dict[str, Any], facts: Facts) -> float:
    """0-10, by other measures than the critic's: word counts, character similarity, clean text."""
    captions = [str(s.get("caption") or "") for s in board.get("scenes") or []]
    if not captions:
        return 0.0
    fits = statistics.mean(1.0 if 2 <= len(c.split()) <= 8 and len(c) <= 42 else 0.0 for c in captions)
    alike = [difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio() for a, b in
             itertools.combinations(captions, 2)]
    distinct = 1.0 - sum(1 for r in alike if r >= 0.6) / len(alike) if alike else 1.0
    named = 1.0 if facts.product.lower() in " ".join(captions).lower() else 0.0
    call_words = set(re.findall(r"\w+", facts.cta.lower()))
    last_words = set(re.findall(r"\w+", captions[-1].lower()))
    calls = len(call_words & last_words) / len(call_words) if call_words else 1.0
    clean = statistics.mean(1.0 if c and len(_LETTERS.findall(c)) >= 0.7 * len(c.replace(" ", ""))
                            and not _LABEL.search(c) else 0.0 for c in captions)
    return round(10 * statistics.mean([fits, distinct, named, calls, clean]), 3)


def best_of(scores: Sequence[float], n: int) -> float:
    return max(scores[:n])


def llm_calls(board: dict[str, Any]) -> int:
    """The writer's LLM calls for this storyboard: one per scene it did not keep."""
    return sum(1 for scene in board.get("scenes") or [] if scene.get("source") != "kept")


def run(products: Sequence[Facts], scenes: int, turns: int, seed: int, *, verbose: bool = False) -> None:
    os.environ.setdefault("NODELOOM_LLM_THREADS", "1")
    store = LocalArtifactStore(tempfile.mkdtemp(prefix="nodeloom-bench-refine-"))
    ctx = NodeContext(run_id="bench-refine", node_id="storyboard", artifacts=store)
    critic = StoryboardRules()
    critique_rows: list[list[float]] = []
    resample_rows: list[list[float]] = []
    calls = {"critique": [0] * (turns + 1), "resample": [0] * (turns + 1)}  # LLM calls within the first n turns
    started = time.monotonic()

    def show(arm: str, board: dict[str, Any], score: float) -> None:
        if verbose:
            captions = " | ".join(f"{s['caption']}{'' if s.get('source') == 'llm' else ' (' + s['source'] + ')'}"
                                  for s in board["scenes"])
            print(f"    {arm:<8} {score:5.2f}  {captions}", file=sys.stderr, flush=True)

    for number, facts in enumerate(products, start=1):
        first = FIRST_INSTRUCTION.format(tone=facts.tone)
        critique_scores: list[float] = []
        critique_calls: list[int] = []
        instruction = first
        for _ in range(turns):
            board = write_storyboard(ctx, facts, scenes, instruction, seed)
            critique_scores.append(independent_score(board, facts))
            critique_calls.append(llm_calls(board))
            critic_score, reasoning, instruction = critic.verdict(board, instruction)
            show("critique", board, critique_scores[-1])
            if verbose and critic_score < 10:
                print(f"    {'':<8} critic {critic_score:.2f}: {reasoning}", file=sys.stderr, flush=True)
            if critic_score >= 10:  # the critic is satisfied: the loop stops (later turns would keep every scene)
                critique_scores += [critique_scores[-1]] * (turns - len(critique_scores))
                break
        resample_scores = [critique_scores[0]]  # turn 1 is the same storyboard
        resample_calls = [critique_calls[0]]
        for extra in range(1, turns):
            board = write_storyboard(ctx, facts, scenes, first, seed + 1000 * extra)
            resample_scores.append(independent_score(board, facts))
            resample_calls.append(llm_calls(board))
            show("resample", board, resample_scores[-1])
        for n in range(1, turns + 1):
            calls["critique"][n] += sum(critique_calls[:n])
            calls["resample"][n] += sum(resample_calls[:n])
        critique_rows.append(critique_scores)
        resample_rows.append(resample_scores)
        print(f"[{number:2d}/{len(products)}] {facts.product:<14} critique {critique_scores}  "
              f"resample {resample_scores}  ({time.monotonic() - started:.0f}s)", file=sys.stderr, flush=True)
    print(f"\n{len(products)} products, {scenes} scenes each, seed {seed}; independent rule score 0-10; "
          "N = storyboards written per product (the same in both arms); LLM calls = captions drawn\n")
    print("| N | critique → refine (mean best-of-N) | plain resampling (mean best-of-N) | improved over turn 1: "
          "refine | resample | refine > resample | refine < resample | LLM calls per product: refine | resample |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in (1, 2, 4):
        if n > turns:
            break
        refine = [best_of(row, n) for row in critique_rows]
        resample = [best_of(row, n) for row in resample_rows]
        improved_refine = sum(1 for row in critique_rows if best_of(row, n) > row[0]) / len(products)
        improved_resample = sum(1 for row in resample_rows if best_of(row, n) > row[0]) / len(products)
        wins = sum(1 for a, b in zip(refine, resample, strict=True) if a > b) / len(products)
        losses = sum(1 for a, b in zip(refine, resample, strict=True) if a < b) / len(products)
        print(f"| {n} | {statistics.mean(refine):.2f} | {statistics.mean(resample):.2f} | {improved_refine:.0%} | "
              f"{improved_resample:.0%} | {wins:.0%} | {losses:.0%} | {calls['critique'][n] / len(products):.1f} | "
              f"{calls['resample'][n] / len(products):.1f} |")
    print(f"\n{time.monotonic() - started:.0f} s")


def load_products(path: Path) -> list[Facts]:
    """Products from a JSON list of {product, description, audience, tone, call_to_action}."""
    return [Facts(str(p["product"]), str(p["description"]), str(p.get("audience", "")), str(p.get("tone", "warm")),
                  str(p.get("call_to_action", ""))) for p in json.loads(path.read_text(encoding="utf-8"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=len(PRODUCTS), help=f"how many (at most {len(PRODUCTS)})")
    parser.add_argument("--start", type=int, default=0, help="skip this many products (to split a run over processes)")
    parser.add_argument("--scenes", type=int, default=3, help="scenes per storyboard")
    parser.add_argument("--turns", type=int, default=4, help="largest N")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--products-file", type=Path, metavar="JSON",
                        help="other products instead of the list above (bench/refine_dev_products.json: the ones "
                             "the writer and the critic were tuned on)")
    parser.add_argument("--verbose", action="store_true", help="print every storyboard and the critic's reasons")
    args = parser.parse_args(argv)
    products = load_products(args.products_file) if args.products_file else PRODUCTS
    run(products[args.start: args.start + args.products], args.scenes, args.turns, args.seed, verbose=args.verbose)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
