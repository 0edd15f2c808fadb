"""`/v1/artifacts`: upload a file (an image, a sound, a video, any file) to give as a run input."""

from __future__ import annotations

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
               422: {"model": ErrorResponse, "description": "an empty body (code empty_artifact) or a "
                                                            "Content-Type that is not a media type "
                                                            "(code invalid_media_type)"}},
)
async def upload_artifact(request: Request, state: State, identity: Runner) -> ArtifactInfo:
    declared = request.headers.get("content-type", "application/octet-stream").split(";", 1)[0].strip()
    if not _MEDIA_TYPE.match(declared):
        raise ApiError(422, "invalid_media_type", "Content-Type must be a media type such as image/png",
                       {"content_type": declared[:200]})
    data = await request.body()
    if not data:
        raise ApiError(422, "empty_artifact", "the body is empty: send the file's bytes")
    ref = await to_thread.run_sync(state.artifacts.put_bytes, data, declared.lower())
    return ArtifactInfo.model_validate(ref.to_json())
