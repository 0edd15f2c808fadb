"""`/v1/artifacts`: upload a file (an image, a sound, a video, any file) to give as a run input."""

from __future__ import annotations

import io
import re

from anyio import to_thread
from fastapi import APIRouter, Request

from nodeloom.api.deps import Runner, State
from nodeloom.api.errors import ERROR_RESPONSES, ApiError
from nodeloom.api.schemas import ArtifactInfo, ErrorResponse

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"], responses=ERROR_RESPONSES)

# RFC 9110 media type: type "/" subtype, both tokens; parameters (charset=...) are dropped
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_MEDIA_TYPE = re.compile(rf"^({_TOKEN})/({_TOKEN})$")
#: the most pixels an uploaded image may have: a few-MiB PNG can declare a size that decodes to
#: gigabytes in the image nodes (a decompression bomb); 50 MP is above an 8K photo's 33 MP
MAX_UPLOAD_PIXELS = 50_000_000


def _check_image(data: bytes, media_type: str) -> None:
    """An upload declared as an image must be one the image nodes can read, of a sane size; only its
    header is read (Pillow opens lazily), nothing is decoded."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # judged below, by our own limit
            with Image.open(io.BytesIO(data)) as picture:
                width, height = picture.size
    except Image.DecompressionBombError:  # Pillow refused to open it: its size is far beyond ours
        raise ApiError(422, "image_too_large", f"the image declares far more than {MAX_UPLOAD_PIXELS} pixels",
                       {"max_pixels": MAX_UPLOAD_PIXELS}) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ApiError(422, "invalid_image", f"the body is not an image the image nodes can read (declared "
                       f"{media_type}; PNG, JPEG, WebP, GIF, BMP, TIFF ...): upload other files with their "
                       "own media type", {"content_type": media_type}) from None
    if width * height > MAX_UPLOAD_PIXELS:
        raise ApiError(422, "image_too_large",
                       f"the image has {width * height} pixels ({width}x{height}); at most {MAX_UPLOAD_PIXELS}",
                       {"width": width, "height": height, "max_pixels": MAX_UPLOAD_PIXELS})


@router.post(
    "", response_model=ArtifactInfo, status_code=201,
    summary="Upload a file as an artifact, to give as a run input (Image, Audio, Video, File)",
    description="The request body is the file's bytes, its `Content-Type` the media type (`image/png`, "
                "`audio/wav`, `video/mp4`, ...). The content is stored once, by its SHA-256; the answer is "
                "its reference, which a run takes as the value of a graph input of a fitting type. The body "
                "is limited like any request (`NODELOOM_MAX_BODY_BYTES`, 413 beyond it).",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
    responses={413: {"model": ErrorResponse, "description": "the file is larger than the body limit"},
               422: {"model": ErrorResponse, "description": "an empty body (code empty_artifact), a "
                                                            "Content-Type that is not a media type "
                                                            "(code invalid_media_type), an image/* body "
                                                            "that is not a readable image (invalid_image) "
                                                            "or has more than 50 million pixels "
                                                            "(image_too_large)"}},
)
async def upload_artifact(request: Request, state: State, identity: Runner) -> ArtifactInfo:
    declared = request.headers.get("content-type", "application/octet-stream").split(";", 1)[0].strip()
    if not _MEDIA_TYPE.match(declared):
        raise ApiError(422, "invalid_media_type", "Content-Type must be a media type such as image/png",
                       {"content_type": declared[:200]})
    data = await request.body()
    if not data:
        raise ApiError(422, "empty_artifact", "the body is empty: send the file's bytes")
    media_type = declared.lower()
    if media_type.startswith("image/"):
        await to_thread.run_sync(_check_image, data, media_type)
    ref = await to_thread.run_sync(state.artifacts.put_bytes, data, media_type)
    return ArtifactInfo.model_validate(ref.to_json())
