"""Imported ComfyUI workflows run end to end on the tiny Stable Diffusion checkpoint.

Real diffusers models built from configs and saved in ComfyUI's models layout (no
download), the local executor, and a Celery `gpu` worker process with a test-owned Redis.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import pytest
from click.testing import CliRunner
from PIL import Image

from nodeloom import comfy
from nodeloom.cli import main
from nodeloom.core.events import EventKind, RunEvent
from nodeloom.executors import LocalExecutor
from nodeloom.node_registry.comfy import CHECKPOINTS
from tests.comfy_fixtures import RUNNABLE, SINGLE_CHECKPOINT, SINGLE_VAE, SIZES, WORKFLOWS, build_models


@pytest.fixture(scope="module")
def comfy_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only fight each other (and other test processes)
    root = build_models(tmp_path_factory.mktemp("comfy"))
    saved = {key: os.environ.get(key) for key in ("NODELOOM_MODELS", "NODELOOM_COMFY_INPUT")}
    os.environ["NODELOOM_MODELS"] = str(root / "models")
    os.environ["NODELOOM_COMFY_INPUT"] = str(root / "input")
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    CHECKPOINTS.clear()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def executor(comfy_root: Path) -> LocalExecutor:
    return LocalExecutor()


def pixels(executor: Any, ref: Any) -> numpy.ndarray[Any, Any]:
    with Image.open(io.BytesIO(executor.artifacts.read_bytes(ref))) as picture:
        return numpy.asarray(picture.convert("RGB"), dtype=numpy.float32) / 255.0


@pytest.mark.parametrize("name", RUNNABLE)
def test_every_fixture_workflow_runs_locally_and_makes_images(executor: LocalExecutor, name: str) -> None:
    graph = comfy.load(WORKFLOWS / f"{name}.ui.json")
    result = executor.run(graph, use_cache=False)
    assert result.ok, result.errors()
    images = result.outputs["images"]
    expected_batch = 2 if name == "lora" else 1
    assert len(images) == expected_batch
    for ref in images:
        picture = pixels(executor, ref)
        assert picture.shape[:2] == SIZES[name][::-1]
        assert picture.std() > 0.01  # a picture, not a blank


def test_text_to_image_equals_the_plain_diffusers_pipeline(executor: LocalExecutor, comfy_root: Path) -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    graph = comfy.load(WORKFLOWS / "txt2img.api.json")
    values = {"positive": "a red fox", "seed": 1234}
    ours = pixels(executor, executor.run(graph, values, use_cache=False).outputs["images"][0])
    pipeline = StableDiffusionPipeline.from_pretrained(comfy_root / "models" / "checkpoints" / "tiny-sd")
    pipeline.set_progress_bar_config(disable=True)
    theirs = pipeline(prompt="a red fox", negative_prompt="blurry", num_inference_steps=2, guidance_scale=7.0,
                      width=64, height=64, generator=torch.Generator("cpu").manual_seed(1234),
                      output_type="np").images[0]  # the checkpoint's scheduler: Euler, ComfyUI's euler/normal
    assert theirs.shape == ours.shape
    assert numpy.abs(theirs - ours).max() <= 1 / 255  # PNG rounding, nothing more
    different_seed = pixels(executor, executor.run(graph, {**values, "seed": 1}, use_cache=False).outputs["images"][0])
    assert numpy.abs(different_seed - ours).max() > 0.05


def test_single_file_checkpoints_and_vaes_give_the_images_of_their_diffusers_folders(
    executor: LocalExecutor, comfy_root: Path
) -> None:
    # ComfyUI's checkpoints/*.safetensors in the original SD layout, loaded with configs/<stem>/ (no hub)
    graph = comfy.load(WORKFLOWS / "txt2img.api.json")
    folder = pixels(executor, executor.run(graph, {"seed": 5}, use_cache=False).outputs["images"][0])
    graph.set_inputs("4", ckpt_name=SINGLE_CHECKPOINT)
    single = pixels(executor, executor.run(graph, {"seed": 5}, use_cache=False).outputs["images"][0])
    assert folder.std() > 0.01 and numpy.array_equal(single, folder)

    upscale = comfy.load(WORKFLOWS / "upscale.api.json")  # VAELoader
    from_folder = pixels(executor, executor.run(upscale, use_cache=False).outputs["images"][0])
    upscale.set_inputs("2", vae_name=SINGLE_VAE)
    from_file = pixels(executor, executor.run(upscale, use_cache=False).outputs["images"][0])
    assert numpy.array_equal(from_file, from_folder)


def test_a_single_file_checkpoint_without_its_config_folder_says_where_the_config_goes(
    executor: LocalExecutor, comfy_root: Path
) -> None:
    import shutil

    models = comfy_root / "models"
    orphan = models / "checkpoints" / "no-config.safetensors"
    shutil.copy(models / "checkpoints" / SINGLE_CHECKPOINT, orphan)
    try:
        graph = comfy.load(WORKFLOWS / "txt2img.api.json")
        graph.set_inputs("4", ckpt_name=orphan.name)
        result = executor.run(graph, use_cache=False)
    finally:
        orphan.unlink()
    assert not result.ok
    (error,) = [error for error in result.errors() if "single-file checkpoint" in error["message"]]
    assert error["node"] == "4"
    assert str(models / "configs" / "no-config") in error["message"]


def test_a_lora_changes_the_image_and_leaves_the_loaded_model_as_it_was(executor: LocalExecutor) -> None:
    graph = comfy.load(WORKFLOWS / "lora.api.json")
    with_lora = pixels(executor, executor.run(graph, use_cache=False).outputs["images"][0])
    graph.set_inputs("2", strength_model=0.0, strength_clip=0.0)
    without = pixels(executor, executor.run(graph, use_cache=False).outputs["images"][0])
    assert numpy.abs(with_lora - without).max() > 0.05
    graph.set_inputs("2", strength_model=0.8, strength_clip=0.5)
    again = pixels(executor, executor.run(graph, use_cache=False).outputs["images"][0])
    assert numpy.array_equal(again, with_lora)  # the patch was undone after each run


def test_the_sampler_reports_each_step_and_the_checkpoint_loads_once(executor: LocalExecutor) -> None:
    graph = comfy.load(WORKFLOWS / "txt2img.api.json")
    events: list[RunEvent] = []
    loads = CHECKPOINTS.loads
    for seed in (1, 2, 3):
        assert executor.run(graph, {"seed": seed, "steps": 3}, on_event=events.append, use_cache=False).ok
    progress = [(event.data["done"], event.data["total"]) for event in events
                if event.kind is EventKind.NODE_PROGRESS and event.node == "3"]
    assert progress == [(1, 3), (2, 3), (3, 3)] * 3
    assert CHECKPOINTS.loads - loads <= 1  # at most the first run loads it (others tests may have)


def test_an_imported_workflow_runs_from_the_command_line_with_new_values(comfy_root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    graph_file = tmp_path / "fox.json"
    assert runner.invoke(main, ["import-comfy", str(WORKFLOWS / "txt2img.api.json"), "-o", str(graph_file)]) \
        .exit_code == 0
    out = tmp_path / "out"
    result = runner.invoke(main, ["run", str(graph_file), "--set", "positive=a blue dog", "--set", "seed=7",
                                  "--out", str(out), "-q", "--no-cache"])
    assert result.exit_code == 0, result.output
    with Image.open(out / "images_0.png") as picture:
        assert picture.size == (64, 64)


@pytest.mark.slow
def test_every_fixture_workflow_runs_on_a_celery_gpu_worker(comfy_root: Path, tmp_path: Path) -> None:
    from nodeloom.executors.celery import CeleryConfig, CeleryExecutor
    from nodeloom.testing import RedisServer, WorkerFleet

    with RedisServer(tmp_path / "redis") as server:
        config = CeleryConfig(broker_url=server.url, artifacts=tmp_path / "artifacts", key_prefix="nlcomfy")
        with WorkerFleet(config, tmp_path / "logs") as fleet, CeleryExecutor(config=config) as executor:
            fleet.start("gpu", "nodeloom.gpu", concurrency=1, env={"OMP_NUM_THREADS": "1"})
            fleet.start("cpu", "nodeloom.cpu,nodeloom.io", concurrency=1, env={"OMP_NUM_THREADS": "1"})
            for name in RUNNABLE:
                result = executor.run(comfy.load(WORKFLOWS / f"{name}.api.json"), use_cache=False)
                assert result.ok, (name, result.errors())
                for ref in result.outputs["images"]:
                    assert pixels(executor, ref).shape[:2] == SIZES[name][::-1]
            (report,) = [report for report in executor.workers() if report["models"]]
            checkpoint = str((comfy_root / "models" / "checkpoints" / "tiny-sd").resolve())
            assert {"kind": "comfy", "model": checkpoint, "dtype": "float32", "device": "cpu"} in report["models"]
            assert report["model_loads"] == 1  # six workflows, one load of the checkpoint


def test_a_missing_checkpoint_is_a_clear_error_naming_the_available_ones(executor: LocalExecutor) -> None:
    graph = comfy.load(WORKFLOWS / "txt2img.api.json")
    graph.set_inputs("4", ckpt_name="sd_xl_base_1.0.safetensors")
    result = executor.run(graph, use_cache=False)
    (error,) = result.errors()
    assert error["node"] == "4"
    assert "no model 'sd_xl_base_1.0.safetensors'" in error["message"] and "available: tiny-sd" in error["message"]
