"""Workers keep models loaded between tasks and report what they hold: diffusion pipelines
on a GPU-queue worker, the embedded LLM on a cpu worker.

A real `celery worker` on the `nodeloom.gpu` queue with one pool process (as GPU workers
run), a test-owned `redis-server`, and the tiny Stable Diffusion pipeline built from
configs and saved to a temporary folder (no download). Loads are counted by the worker
process's pipeline cache, which the worker reports to the run store after every task.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeloom.core import Graph, NodeState
from nodeloom.executors.celery import CeleryConfig, CeleryExecutor
from nodeloom.node_registry.image.tiny import save_tiny_pipeline
from nodeloom.testing import RedisServer, WorkerFleet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("models"))


@pytest.fixture
def gpu_fleet(tmp_path: Path) -> Iterator[tuple[CeleryExecutor, WorkerFleet]]:
    with RedisServer(tmp_path / "redis") as server:
        config = CeleryConfig(broker_url=server.url, artifacts=tmp_path / "artifacts", key_prefix="nlgpu")
        with WorkerFleet(config, tmp_path / "logs") as fleet, CeleryExecutor(config=config) as executor:
            yield executor, fleet


def images_graph(model: Path, pictures: int, prompt: str) -> Graph:
    g = Graph()
    pipe = g.add("image.pipeline", "pipe", model=str(model), device="cpu")
    for index in range(pictures):
        picture = g.add("image.generate", f"picture{index}", pipe=pipe["pipe"], prompt=prompt, steps=2,
                        width=32, height=32, seed=index)
        g.output(f"picture{index}", picture["images"])
    return g


def test_gpu_worker_loads_a_model_once_and_reports_that_it_holds_it(
    gpu_fleet: tuple[CeleryExecutor, WorkerFleet], tiny_model: Path
) -> None:
    executor, fleet = gpu_fleet
    worker = fleet.start("gpu", "nodeloom.gpu", concurrency=1)
    assert executor.workers() == []
    first = executor.run(images_graph(tiny_model, 2, "a red cat"), use_cache=False)
    assert first.ok, {n: r.error for n, r in first.nodes.items()}
    assert all(record.state is NodeState.DONE for record in first.nodes.values())
    images: list[Any] = [first.outputs[f"picture{i}"][0] for i in range(2)]
    assert all(image.media_type == "image/png" and executor.artifacts.exists(image) for image in images)
    (report,) = executor.workers()
    held = {"kind": "image", "model": str(tiny_model.resolve()), "dtype": "float32", "device": "cpu"}
    assert report["models"] == [held] and report["model_loads"] == 1
    # loaded inside the pool process that ran the nodes, not in the worker's main process before the fork
    assert report["pid"] != worker.pid and report["worker"].startswith("gpu@")
    # another run, with its own image.pipeline node on the same model: the pipeline is still warm
    second = executor.run(images_graph(tiny_model, 1, "a blue dog"), use_cache=False)
    assert second.ok
    (report,) = executor.workers()
    assert report["models"] == [held] and report["model_loads"] == 1
    fleet.stop(worker)
    assert executor.workers() == []  # a process that exits takes its report with it


def chat_graph(questions: list[str]) -> Graph:
    g = Graph()
    for index, question in enumerate(questions):
        answer = g.add("llm.chat", f"answer{index}", prompt=question, max_tokens=4, temperature=0.0,
                       provider="local", stream=False)
        g.output(f"answer{index}", answer["text"])
    return g


def test_a_worker_keeps_the_local_llm_loaded_and_reports_it(gpu_fleet: tuple[CeleryExecutor, WorkerFleet]) -> None:
    from nodeloom.node_registry.llm.local import bundled_model_path, configured_threads

    executor, fleet = gpu_fleet
    fleet.start("cpu", "nodeloom.cpu,nodeloom.io", concurrency=1)
    first = executor.run(chat_graph(["Say hi.", "Say bye."]), use_cache=False)
    assert first.ok, {n: r.error for n, r in first.nodes.items()}
    assert all(isinstance(text, str) for text in first.outputs.values())
    (report,) = executor.workers()
    held = {"kind": "llm", "model": str(bundled_model_path().resolve()), "threads": str(configured_threads())}
    assert report["models"] == [held] and report["model_loads"] == 1
    assert executor.run(chat_graph(["Say thanks."]), use_cache=False).ok
    (report,) = executor.workers()
    assert report["models"] == [held] and report["model_loads"] == 1  # still warm: no second load
