"""`POST /v1/artifacts`: a file uploaded to a real `nodeloom serve` becomes a reference that a run
takes as the value of an Image (Audio, Video, File) input; bad uploads are 4xx, never a traceback.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from processes import ApiServer, cli_env, create_key

from nodeloom.api.client import ApiClientError, AsyncClient, Client

MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("artifacts")
    instance = ApiServer(f"sqlite:///{home / 'nodeloom.db'}", home,
                         env=cli_env(home, NODELOOM_MAX_BODY_BYTES=str(MAX_BODY)))
    with instance.running():
        yield instance


@pytest.fixture(scope="module")
def run_key(server: ApiServer) -> str:
    return create_key(server.db_url, server.env, "acme", "run")


@pytest.fixture
def api(server: ApiServer, run_key: str) -> Iterator[Client]:
    with Client(server.url, api_key=run_key) as client:
        yield client


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "#3366cc").save(buffer, format="PNG")
    return buffer.getvalue()


def resize_graph() -> dict[str, Any]:
    """photo (an Image input) -> image.resize 16x8 -> the output `small`."""
    return {
        "name": "resize",
        "inputs": {"photo": {"type": "Image", "description": "the picture to resize"}},
        "nodes": {"small": {"type": "image.resize",
                            "inputs": {"image": {"input": "photo"}, "width": 16, "height": 8, "mode": "stretch"}}},
        "outputs": {"small": {"node": "small", "output": "image"}},
    }


def test_an_uploaded_image_is_a_reference_a_run_takes_as_its_image_input(api: Client) -> None:
    data = png(40, 30)
    ref = api.upload_artifact(data, "image/png")
    assert ref == {"$artifact": f"sha256:{hashlib.sha256(data).hexdigest()}", "media_type": "image/png",
                   "size": len(data), "kind": "image"}
    run = api.wait(api.submit(resize_graph(), {"photo": ref}).id, timeout=60)
    assert run.status.value == "succeeded", run.errors
    small = Image.open(io.BytesIO(api.download_artifact(run.id, run.outputs["small"])))
    assert small.size == (16, 8)


def test_a_file_uploaded_by_its_path_takes_its_media_type_from_the_name(api: Client, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("three words here")
    ref = api.upload_artifact(path)
    assert (ref["media_type"], ref["kind"], ref["size"]) == ("text/plain", "file", 16)
    # the same bytes again: the same reference (stored once, by content)
    assert api.upload_artifact(path.read_bytes(), "text/plain") == ref


def test_the_async_client_uploads_too(server: ApiServer, run_key: str) -> None:
    async def upload() -> dict[str, Any]:
        async with AsyncClient(server.url, api_key=run_key) as client:
            return await client.upload_artifact(b"RIFF....WAVE", "audio/wav")

    assert asyncio.run(upload())["kind"] == "audio"


@pytest.mark.parametrize(("content_type", "body", "status", "code"), [
    ("image/png", b"", 422, "empty_artifact"),
    ("not a media type", b"x", 422, "invalid_media_type"),
    ("image/png", b"x" * (MAX_BODY + 1), 413, None),
])
def test_bad_uploads_are_refused_with_a_structured_error(server: ApiServer, run_key: str, content_type: str,
                                                         body: bytes, status: int, code: str | None) -> None:
    response = httpx.post(f"{server.url}/v1/artifacts", content=body,
                          headers={"Authorization": f"Bearer {run_key}", "Content-Type": content_type})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code


def _png_header_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header declares `width`x`height`: a decompression bomb's shape, never decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("body", "code"), [
    (b"this is text, not a picture", "invalid_image"),
    (_png_header_claiming(10_000, 10_000), "image_too_large"),  # 100 MP: Pillow only warns at this size
    (_png_header_claiming(60_000, 60_000), "image_too_large"),  # Pillow itself refuses this one
])
def test_an_upload_declared_as_an_image_must_be_a_readable_image_of_a_sane_size(
    server: ApiServer, run_key: str, body: bytes, code: str,
) -> None:
    response = httpx.post(f"{server.url}/v1/artifacts", content=body,
                          headers={"Authorization": f"Bearer {run_key}", "Content-Type": "image/png"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    # the same bytes as a plain file are fine: only what claims to be an image is checked
    as_file = httpx.post(f"{server.url}/v1/artifacts", content=body,
                         headers={"Authorization": f"Bearer {run_key}", "Content-Type": "application/octet-stream"})
    assert as_file.status_code == 201


def test_uploading_needs_a_key_with_the_run_scope(server: ApiServer) -> None:
    with Client(server.url, api_key=None) as anonymous, pytest.raises(ApiClientError) as missing:
        anonymous.upload_artifact(b"data", "text/plain")
    assert missing.value.status == 401
    reader = create_key(server.db_url, server.env, "acme", "read")
    with Client(server.url, api_key=reader) as client, pytest.raises(ApiClientError) as refused:
        client.upload_artifact(b"data", "text/plain")
    assert refused.value.status == 403
