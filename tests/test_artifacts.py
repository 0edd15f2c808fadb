"""Artifacts: stored once by content, passed between nodes as references."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pytest
import torch

from nodeloom.core import (
    ArtifactNotFoundError,
    ArtifactRef,
    Graph,
    ImageRef,
    LocalArtifactStore,
    NodeContext,
    NodeState,
    TensorRef,
    node,
)
from nodeloom.core.artifacts import FsspecArtifactStore, open_artifact_store
from nodeloom.core.errors import ArtifactStoreError
from nodeloom.executors import LocalExecutor


def tiny_png(red: int) -> bytes:
    """A real 1x1 PNG, built by hand so the test needs no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = b"\x89PNG\r\n\x1a\n"
    ihdr = chunk(b"IHDR", (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0]))
    idat = chunk(b"IDAT", zlib.compress(bytes([0, red, 0, 0])))
    return header + ihdr + idat + chunk(b"IEND", b"")


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    first = store.put_bytes(tiny_png(10), "image/png")
    second = store.put_bytes(tiny_png(10), "image/png")
    other = store.put_bytes(tiny_png(20), "image/png")
    assert first == second and first != other
    assert first.kind == "image" and first.size == len(tiny_png(10))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 2
    assert store.read_bytes(first) == tiny_png(10)
    assert store.path(first).parent.name == first.digest[:2]


def test_put_file_streams_and_guesses_the_media_type(tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"\x00" * 3_000_000)
    ref = LocalArtifactStore(tmp_path / "store").put_file(source)
    assert (ref.media_type, ref.kind, ref.size) == ("video/mp4", "video", 3_000_000)


def test_missing_artifact_is_a_clear_error(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    ghost = ArtifactRef("f" * 64, "image/png", 1, "image")
    assert not store.exists(ghost)
    with pytest.raises(ArtifactNotFoundError, match="not in the store"):
        store.path(ghost)


def test_reference_json_round_trip() -> None:
    ref = ArtifactRef("a" * 64, "audio/wav", 42, "audio")
    assert ArtifactRef.from_json(ref.to_json()) == ref
    with pytest.raises(ValueError, match="sha256"):
        ArtifactRef.from_json({"$artifact": "sha256:xyz"})


@node("art.make_image")
def make_image(ctx: NodeContext, red: int) -> ImageRef:
    return ctx.put_bytes(tiny_png(red), "image/png")


@node("art.image_size")
def image_size(ctx: NodeContext, image: ImageRef) -> int:
    return len(ctx.artifacts.read_bytes(image))


def test_images_travel_between_nodes_as_references(executor: LocalExecutor) -> None:
    g = Graph()
    image = g.add(make_image, red=200)
    size = g.add(image_size, image=image["result"])
    g.output("image", image["result"])
    g.output("size", size["result"])
    result = executor.run(g)
    ref = result.outputs["image"]
    assert isinstance(ref, ArtifactRef) and ref.kind == "image"
    assert result.outputs["size"] == len(tiny_png(200))
    assert executor.artifacts.read_bytes(ref).startswith(b"\x89PNG")
    assert result.to_json()["outputs"]["image"]["$artifact"] == f"sha256:{ref.digest}"


def test_wrong_artifact_kind_is_refused_by_validation(executor: LocalExecutor) -> None:
    g = Graph()
    g.output("size", g.add(image_size, image={"$artifact": "sha256:" + "a" * 64, "kind": "audio"})["result"])
    with pytest.raises(Exception, match="expected Image, received an artifact of kind 'audio'"):
        executor.submit(g)


@node("art.make_tensor")
def make_tensor(ctx: NodeContext, size: int) -> TensorRef:
    return ctx.put_tensor(torch.arange(size, dtype=torch.float32))


@node("art.tensor_sum")
def tensor_sum(ctx: NodeContext, tensor: TensorRef) -> float:
    return float(ctx.load_tensor(tensor).sum())


def test_tensors_travel_as_references(executor: LocalExecutor) -> None:
    g = Graph()
    tensor = g.add(make_tensor, size=5)
    g.output("sum", g.add(tensor_sum, tensor=tensor["result"])["result"])
    g.output("tensor", tensor["result"])
    result = executor.run(g)
    assert result.outputs["sum"] == 10.0
    assert result.outputs["tensor"].kind == "tensor"
    again = executor.run(g)
    assert again.nodes[next(iter(again.nodes))].state is NodeState.CACHED


def test_tensor_loading_refuses_pickled_code(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    buffer = io.BytesIO()
    torch.save({"x": Evil()}, buffer)
    ref = store.put_bytes(buffer.getvalue(), "application/x-torch", kind="tensor")
    from nodeloom.core.artifacts import load_tensor

    with pytest.raises(Exception, match=r"Weights only load failed|Unsupported global"):
        load_tensor(store, ref)


def test_fsspec_store_keeps_content_by_digest_at_a_url(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    store = FsspecArtifactStore(f"file://{root}", cache=tmp_path / "cache")
    ref = store.put_bytes(tiny_png(10), "image/png")
    again = store.put_bytes(tiny_png(10), "image/png")
    assert ref == again and ref.kind == "image"
    assert (root / ref.digest[:2] / ref.digest).read_bytes() == tiny_png(10)
    assert [p.name for p in (root / ref.digest[:2]).iterdir()] == [ref.digest]  # no temporary file left
    # another machine: a store on the same URL with its own (empty) local cache
    other = FsspecArtifactStore(f"file://{root}", cache=tmp_path / "other-cache")
    assert other.exists(ref) and other.read_bytes(ref) == tiny_png(10)
    assert other.path(ref).parent.parent == tmp_path / "other-cache" and other.path(ref).read_bytes() == tiny_png(10)
    source = tmp_path / "clip.wav"
    source.write_bytes(b"RIFF....WAVE")
    audio = other.put_file(source)
    assert audio.media_type in ("audio/wav", "audio/x-wav") and store.read_bytes(audio) == b"RIFF....WAVE"


def test_fsspec_store_refuses_content_that_does_not_match_its_digest(tmp_path: Path) -> None:
    store = FsspecArtifactStore("memory://nodeloom-test-corrupt", cache=tmp_path / "a")
    ref = store.put_bytes(b"original", "text/plain")
    store.fs.pipe_file(store._location(ref.digest), b"replaced")
    reader = FsspecArtifactStore("memory://nodeloom-test-corrupt", cache=tmp_path / "b")
    with pytest.raises(ArtifactStoreError, match="does not match its digest"):
        reader.path(ref)
    missing = ArtifactRef("0" * 64, "text/plain", 1)
    with pytest.raises(ArtifactNotFoundError, match="memory://nodeloom-test-corrupt"):
        reader.read_bytes(missing)
    assert not reader.exists(missing)


def test_open_artifact_store_picks_the_store_for_a_location(tmp_path: Path) -> None:
    assert isinstance(open_artifact_store(tmp_path / "a"), LocalArtifactStore)
    local = open_artifact_store(f"file://{tmp_path}/b")
    assert isinstance(local, LocalArtifactStore) and local.root == tmp_path / "b"
    assert isinstance(open_artifact_store("memory://nodeloom-test-open"), FsspecArtifactStore)
    with pytest.raises(ArtifactStoreError, match="cannot open artifact store 'nosuch://x'") as caught:
        open_artifact_store("nosuch://x")
    assert caught.value.to_dict()["error"]["code"] == "artifact_store_error"
