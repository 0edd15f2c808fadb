"""Artifacts across Celery workers that share no local folder: a `file://` URL and S3.

Two real `celery worker` processes, each with its own `NODELOOM_HOME` (so nothing is shared
through a default folder), take different queues: the first draws an image, the second
resizes it, so the image must travel through the configured store. Node outputs are forced
out of Redis into the store too (`inline_limit` of 64 bytes). For S3 the test starts moto's
S3-compatible server (`moto_server`, a separate process speaking the S3 HTTP protocol on
127.0.0.1) and workers reach it through s3fs/botocore exactly as they would reach AWS.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from netutil import free_port
from PIL import Image

from nodeloom.core import Graph
from nodeloom.core.artifacts import FsspecArtifactStore, LocalArtifactStore
from nodeloom.executors.celery import CeleryConfig, CeleryExecutor
from nodeloom.testing import RedisServer, WorkerFleet, wait_until

pytestmark = pytest.mark.slow


def card_then_resize() -> Graph:
    g = Graph()
    card = g.add("image.title_card", "card", text="Across machines", width=160, height=90)
    small = g.add("image.resize", "small", image=card["image"], width=64, height=36, mode="stretch")
    g.configure("small", queue="nodeloom.second")
    g.output("card", card["image"])
    g.output("small", small["image"])
    return g


def run_across_two_workers(config: CeleryConfig, tmp_path: Path, env: dict[str, str] | None = None) -> CeleryExecutor:
    with RedisServer(tmp_path / "redis") as server:
        config = CeleryConfig(broker_url=server.url, artifacts=config.artifacts, inline_limit=64, key_prefix="nlart")
        with WorkerFleet(config, tmp_path / "logs", env=env) as fleet:
            fleet.start("first", "nodeloom.cpu", concurrency=1, env={"NODELOOM_HOME": str(tmp_path / "home1")})
            fleet.start("second", "nodeloom.second", concurrency=1, env={"NODELOOM_HOME": str(tmp_path / "home2")})
            executor = CeleryExecutor(config=config)
            try:
                result = executor.run(card_then_resize(), use_cache=False)
                assert result.ok, {n: r.error for n, r in result.nodes.items()}
                card, small = result.outputs["card"], result.outputs["small"]
                assert Image.open(io.BytesIO(executor.artifacts.read_bytes(card))).size == (160, 90)
                assert Image.open(io.BytesIO(executor.artifacts.read_bytes(small))).size == (64, 36)
                # the outputs themselves were spilled to the store, not kept in Redis
                stored = executor.store.node_outputs(result.run_id, ["card", "small"])
                assert all(text is not None and "$spilled" in text for text in stored)
            finally:
                executor.close()
    return executor


def test_file_url_store_is_shared_by_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODELOOM_HOME", str(tmp_path / "home0"))
    shared = tmp_path / "shared"
    executor = run_across_two_workers(CeleryConfig(artifacts=f"file://{shared}"), tmp_path)
    assert isinstance(executor.artifacts, LocalArtifactStore) and executor.artifacts.root == shared
    assert len(list(shared.glob("*/*"))) >= 4  # two images and two spilled outputs
    assert not (tmp_path / "home1").exists() and not (tmp_path / "home2").exists()


@pytest.fixture
def s3_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    port = free_port()
    env = {"AWS_ACCESS_KEY_ID": "nodeloom-test", "AWS_SECRET_ACCESS_KEY": "nodeloom-test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    moto = Path(sys.executable).with_name("moto_server")
    with (tmp_path / "moto.log").open("wb") as log:
        server = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                                  stderr=subprocess.STDOUT, env={**os.environ, **env})
    try:
        import urllib.request

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                    return True
            except OSError:
                return False

        wait_until(answers, 30, "moto's S3 server")
        for name, value in {**env, "NODELOOM_HOME": str(tmp_path / "home0")}.items():
            monkeypatch.setenv(name, value)
        yield env
    finally:
        server.terminate()
        server.wait(10)


def test_s3_store_carries_artifacts_between_workers(s3_server: dict[str, str], tmp_path: Path) -> None:
    import s3fs

    s3 = s3fs.S3FileSystem()
    s3.mkdir("nodeloom-artifacts")
    executor = run_across_two_workers(CeleryConfig(artifacts="s3://nodeloom-artifacts/runs"), tmp_path, env=s3_server)
    assert isinstance(executor.artifacts, FsspecArtifactStore)
    s3.invalidate_cache()
    objects = s3.find("nodeloom-artifacts/runs")
    assert len(objects) >= 4 and all(len(Path(name).name) == 64 for name in objects)
    # each worker read what it needed from S3 into its own cache: the second one got the card from there
    assert list((tmp_path / "home2").glob("artifacts/remote/*/*/*"))
