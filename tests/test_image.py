"""The image pack: diffusers pipelines loaded from a folder, generation, editing, and the Pillow nodes.

The diffusion tests build a tiny Stable Diffusion pipeline from configs (random weights, a
tokenizer over a few dozen tokens; see `nodeloom.node_registry.image.tiny`), `save_pretrained`
it once per module and load it back through the pack's real `from_pretrained` path. Images are
checked by decoding the PNG artifacts the nodes store.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image, ImageChops, ImageStat

from nodeloom.core import ArtifactRef, EventKind, Graph, NodeState, RunEvent, RunResult, RunStatus
from nodeloom.core.cache import canonical_json
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry.image import PIPELINES, PipelineCache, PipelineHandle, choose_handle
from nodeloom.node_registry.image.tiny import save_tiny_pipeline


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("models"))


def handle_for(model: Path) -> PipelineHandle:
    """The handle image.pipeline makes for `model` with its defaults on a machine without a GPU."""
    return choose_handle(str(model), lane_device="cpu")


def generate_graph(model: Path | str, **inputs: Any) -> Graph:
    g = Graph()
    pipe = g.add("image.pipeline", "pipe", model=str(model))
    settings = {"prompt": "a red cat", "steps": 4, "width": 64, "height": 64, "seed": 7, **inputs}
    g.output("images", g.add("image.generate", "gen", pipe=pipe["pipe"], **settings)["images"])
    return g


def as_ref(value: Any) -> ArtifactRef:
    return value if isinstance(value, ArtifactRef) else ArtifactRef.from_json(value)


def decode(executor: LocalExecutor, value: Any) -> Image.Image:
    with Image.open(io.BytesIO(executor.artifacts.read_bytes(as_ref(value)))) as opened:
        assert opened.format == "PNG"
        return opened.convert("RGB")


def store(executor: LocalExecutor, image: Image.Image) -> dict[str, Any]:
    """The image as a PNG artifact, in the JSON form a graph literal takes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return executor.artifacts.put_bytes(buffer.getvalue(), "image/png").to_json()


def failure(result: RunResult, node_id: str) -> dict[str, Any]:
    record = result.nodes[node_id]
    assert record.state is NodeState.FAILED
    assert record.error is not None
    return record.error


def pixels_differ(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0-255."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


class UNetCalls:
    """Counts forward calls of a loaded pipeline's UNet (one per denoising step)."""

    def __init__(self, pipeline: Any) -> None:
        self.count = 0
        self._hook = pipeline.unet.register_forward_hook(self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1

    def remove(self) -> None:
        self._hook.remove()


# -- loading ----------------------------------------------------------------------------


def test_pipeline_loads_on_the_cpu_in_float32_without_a_gpu(executor: LocalExecutor, model: Path) -> None:
    g = Graph()
    g.output("pipe", g.add("image.pipeline", "pipe", model=str(model))["pipe"])
    result = executor.run(g)
    assert result.ok, result.nodes["pipe"].error
    handle = PipelineHandle.of(result.outputs["pipe"])
    assert handle == PipelineHandle(model=str(model.resolve()), dtype="float32", device="cpu")
    loaded = PIPELINES.get(handle)
    assert type(loaded).__name__ == "StableDiffusionPipeline"
    assert loaded.unet.dtype == torch.float32 and loaded.unet.device.type == "cpu"


def test_handle_survives_a_json_round_trip(model: Path) -> None:
    handle = handle_for(model)
    assert PipelineHandle.of(json.loads(canonical_json(handle))) == handle


def test_missing_model_path_is_a_clear_error_naming_it(executor: LocalExecutor, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    error = failure(executor.run(generate_graph(missing)), "pipe")
    assert error["code"] == "node_failed"
    assert str(missing) in error["message"] and "save_pretrained" in error["message"]
    assert "Traceback" not in error["message"]


@pytest.mark.parametrize("damage", ["garbage model_index.json", "no unet folder"])
def test_corrupt_model_folder_is_a_clear_error(
    executor: LocalExecutor, model: Path, tmp_path: Path, damage: str
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    if damage == "no unet folder":
        shutil.rmtree(broken / "unet")
    else:
        (broken / "model_index.json").write_text("{ this is not json")
    error = failure(executor.run(generate_graph(broken)), "pipe")
    assert error["message"].startswith(f"cannot load the diffusers pipeline in folder {broken}:")
    assert "save_pretrained" in error["message"]


def test_hub_id_missing_from_the_local_cache_fails_offline_with_a_fix(
    executor: LocalExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    error = failure(executor.run(generate_graph("nodeloom-tests/no-such-model")), "pipe")
    assert "'nodeloom-tests/no-such-model'" in error["message"]
    assert "HF_HUB_OFFLINE" in error["message"] and "hf download nodeloom-tests/no-such-model" in error["message"]


def test_concurrent_requests_load_a_pipeline_once(model: Path) -> None:
    cache = PipelineCache()
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(handle_for(model)))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.loads == 1
    assert len(got) == 4 and all(pipeline is got[0] for pipeline in got)


def test_pipeline_cache_drops_the_least_recently_used(model: Path) -> None:
    cache = PipelineCache(max_entries=1)
    full, half = handle_for(model), choose_handle(str(model), device="cpu", dtype="bfloat16")
    cache.get(full)
    assert cache.get(half).unet.dtype == torch.bfloat16
    assert half in cache and full not in cache and len(cache) == 1
    cache.get(full)
    assert cache.loads == 3


# -- generate ---------------------------------------------------------------------------


def test_generate_returns_png_images_of_the_requested_size(executor: LocalExecutor, model: Path) -> None:
    result = executor.run(generate_graph(model, width=64, height=48, batch_size=2))
    assert result.ok, result.nodes["gen"].error
    images = [decode(executor, ref) for ref in result.outputs["images"]]
    assert [image.size for image in images] == [(64, 48), (64, 48)]
    assert pixels_differ(images[0], images[1]) > 0  # two samples of one batch, not one copied


def test_generate_reports_one_progress_event_per_step(executor: LocalExecutor, model: Path) -> None:
    events: list[RunEvent] = []
    assert executor.submit(generate_graph(model, steps=5), on_event=events.append).result().ok
    progress = [e.data for e in events if e.kind is EventKind.NODE_PROGRESS and e.node == "gen"]
    assert [(p["done"], p["total"]) for p in progress] == [(step, 5) for step in range(1, 6)]


def test_the_seed_fixes_the_pixels(executor: LocalExecutor, model: Path) -> None:
    def pixels(seed: int) -> bytes:
        result = executor.run(generate_graph(model, seed=seed), use_cache=False)
        assert result.nodes["gen"].state is NodeState.DONE
        return decode(executor, result.outputs["images"][0]).tobytes()

    assert pixels(11) == pixels(11)
    assert pixels(11) != pixels(12)


def test_a_second_run_with_another_prompt_does_not_reload_the_pipeline(executor: LocalExecutor, model: Path) -> None:
    PIPELINES.clear()
    first = executor.run(generate_graph(model, prompt="a red cat"))
    second = executor.run(generate_graph(model, prompt="a blue dog"), use_cache=False)
    assert first.ok and second.ok
    assert second.nodes["pipe"].state is NodeState.DONE and second.nodes["gen"].state is NodeState.DONE
    assert PIPELINES.loads == 1
    first_pixels = decode(executor, first.outputs["images"][0]).tobytes()
    assert first_pixels != decode(executor, second.outputs["images"][0]).tobytes()


def test_cancelling_stops_generation_between_steps(executor: LocalExecutor, model: Path) -> None:
    steps = 500
    calls = UNetCalls(PIPELINES.get(handle_for(model)))
    try:
        started = threading.Event()
        events: list[RunEvent] = []

        def watch(event: RunEvent) -> None:
            events.append(event)
            if event.kind is EventKind.NODE_PROGRESS:
                started.set()

        run = executor.submit(generate_graph(model, steps=steps), on_event=watch)
        assert started.wait(30)
        assert run.cancel()
        result = run.result(timeout=30)
        assert result.status is RunStatus.CANCELLED and result.nodes["gen"].state is NodeState.CANCELLED
        # the GPU lane has one thread: this 1-step run starts only once the cancelled node has returned
        assert executor.run(generate_graph(model, steps=1, seed=1)).ok
        assert calls.count - 1 < steps
        assert 0 < sum(e.kind is EventKind.NODE_PROGRESS for e in events) < steps
    finally:
        calls.remove()


def test_generate_refuses_a_size_that_is_not_a_multiple_of_8(executor: LocalExecutor, model: Path) -> None:
    error = failure(executor.run(generate_graph(model, width=60)), "gen")
    assert "width must be a multiple of 8, got 60" in error["message"]


# -- edit -------------------------------------------------------------------------------


def edit_graph(model: Path, image: dict[str, Any], **inputs: Any) -> Graph:
    g = Graph()
    pipe = g.add("image.pipeline", "pipe", model=str(model))
    settings = {"prompt": "make it blue", "strength": 0.75, "steps": 4, "seed": 3, **inputs}
    g.output("image", g.add("image.edit", "edit", pipe=pipe["pipe"], image=image, **settings)["image"])
    return g


def test_edit_keeps_the_input_size_and_changes_pixels(executor: LocalExecutor, model: Path) -> None:
    source = Image.linear_gradient("L").resize((60, 44)).convert("RGB")
    result = executor.run(edit_graph(model, store(executor, source)))
    assert result.ok, result.nodes["edit"].error
    edited = decode(executor, result.outputs["image"])
    assert edited.size == (60, 44)
    assert pixels_differ(edited, source) > 5


def test_edit_runs_on_the_loaded_pipeline_without_a_second_load(executor: LocalExecutor, model: Path) -> None:
    loaded = PIPELINES.get(handle_for(model))
    loads = PIPELINES.loads
    calls = UNetCalls(loaded)
    try:
        source = Image.new("RGB", (64, 64), "orange")
        assert executor.run(edit_graph(model, store(executor, source), steps=4, strength=0.5)).ok
    finally:
        calls.remove()
    assert calls.count == 2  # int(4 steps × strength 0.5) steps, on the already loaded UNet
    assert PIPELINES.loads == loads


# -- Pillow nodes -------------------------------------------------------------------------


def run_one(executor: LocalExecutor, node_type: str, **inputs: Any) -> Image.Image:
    g = Graph()
    g.output("image", g.add(node_type, "node", **inputs)["image"])
    result = executor.run(g)
    assert result.ok, result.nodes["node"].error
    return decode(executor, result.outputs["image"])


def ink_box(image: Image.Image, background: tuple[int, int, int]) -> tuple[int, int, int, int] | None:
    """The bounding box of the pixels that are not the background colour."""
    return ImageChops.difference(image, Image.new("RGB", image.size, background)).getbbox()


def test_title_card_draws_centred_text_on_the_background(executor: LocalExecutor) -> None:
    card = run_one(executor, "image.title_card", text="Fresh Tea", width=320, height=180, background="#102030",
                   text_color="#ffffff", font_size=40)
    assert card.size == (320, 180)
    assert card.getpixel((0, 0)) == (16, 32, 48)
    box = ink_box(card, (16, 32, 48))
    assert box is not None
    left, top, right, bottom = box
    assert abs((left + right) / 2 - 160) <= 4 and abs((top + bottom) / 2 - 90) <= 6
    assert (255, 255, 255) in {color for _, color in card.getcolors(320 * 180) or []}


def test_title_card_wraps_long_text_onto_several_lines(executor: LocalExecutor) -> None:
    short = run_one(executor, "image.title_card", text="Tea", width=400, height=300, background="black", font_size=32)
    long = run_one(executor, "image.title_card", text="Freshly picked green tea from the hills, delivered to your door",
                   width=400, height=300, background="black", font_size=32)
    short_box, long_box = ink_box(short, (0, 0, 0)), ink_box(long, (0, 0, 0))
    assert short_box is not None and long_box is not None
    assert (long_box[3] - long_box[1]) > 3 * (short_box[3] - short_box[1])  # several lines
    assert long_box[0] >= 0 and long_box[2] <= 400 - 400 // 12 + 1  # within the margins


def test_title_card_gradient_runs_from_background_to_the_end_colour(executor: LocalExecutor) -> None:
    card = run_one(executor, "image.title_card", text="", width=64, height=200, background="#000000",
                   background_end="#ffffff")
    top, bottom = card.getpixel((32, 0)), card.getpixel((32, 199))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert max(top) <= 5 and min(bottom) >= 250


def test_unknown_colour_is_a_clear_error(executor: LocalExecutor) -> None:
    g = Graph()
    g.output("image", g.add("image.title_card", "node", text="x", background="not-a-colour")["image"])
    error = failure(executor.run(g), "node")
    assert "background: unknown colour 'not-a-colour'" in error["message"]


@pytest.mark.parametrize("mode", ["fit", "fill", "stretch"])
def test_resize_gives_exactly_the_requested_size(executor: LocalExecutor, mode: str) -> None:
    source = store(executor, Image.new("RGB", (300, 100), "red"))
    assert run_one(executor, "image.resize", image=source, width=120, height=90, mode=mode).size == (120, 90)


def test_resize_fit_letterboxes_with_the_background(executor: LocalExecutor) -> None:
    source = store(executor, Image.new("RGB", (300, 100), "red"))
    fitted = run_one(executor, "image.resize", image=source, width=120, height=120, mode="fit", background="#00ff00")
    assert fitted.getpixel((60, 0)) == (0, 255, 0)  # padding above the image
    assert fitted.getpixel((60, 60)) == (255, 0, 0)


def test_resize_fill_covers_the_frame_by_cropping(executor: LocalExecutor) -> None:
    source = Image.new("RGB", (300, 100), "blue")
    source.paste((255, 255, 0), (0, 0, 50, 100))  # a yellow strip on the left, cropped away
    filled = run_one(executor, "image.resize", image=store(executor, source), width=100, height=100, mode="fill")
    assert filled.getcolors() == [(100 * 100, (0, 0, 255))]


@pytest.mark.parametrize("position", ["top", "bottom"])
def test_overlay_text_puts_a_readable_band_at_the_position(executor: LocalExecutor, position: str) -> None:
    source = store(executor, Image.new("RGB", (240, 160), "white"))
    captioned = run_one(executor, "image.overlay_text", image=source, text="Only today", position=position,
                        font_size=20, band_color="#000000", band_opacity=0.7)
    assert captioned.size == (240, 160)
    band_y, far_y = (4, 155) if position == "top" else (155, 4)
    assert captioned.getpixel((2, band_y)) == (77, 77, 77)  # white under a 70 % black band
    assert captioned.getpixel((2, far_y)) == (255, 255, 255)
    band = captioned.crop((0, 0, 240, 40) if position == "top" else (0, 120, 240, 160))
    assert band.convert("L").getextrema()[1] >= 240  # white text on the dark band


def test_overlay_text_wraps_a_long_caption_into_a_taller_band(executor: LocalExecutor) -> None:
    source = store(executor, Image.new("RGB", (200, 200), "white"))

    def band_height(text: str) -> int:
        captioned = run_one(executor, "image.overlay_text", image=source, text=text, font_size=16)
        column = [captioned.getpixel((1, y)) for y in range(200)]
        return sum(1 for pixel in column if pixel != (255, 255, 255))

    assert band_height("A caption that goes on for quite a few words, long past one line") > 2 * band_height("Hi")
