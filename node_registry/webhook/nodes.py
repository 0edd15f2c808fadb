"""webhook.post: a JSON payload POSTed to a webhook, through http.request's sending code (same address
policy, secrets and limits), with artifacts in the payload given a location its receiver can follow."""

from __future__ import annotations

import json as jsonlib
from typing import Annotated, Any

from nodeloom.core.context import NodeContext
from nodeloom.core.ports import Range
from nodeloom.core.spec import node
from nodeloom.core.types import Json
from nodeloom.node_registry.http.nodes import (
    NETWORK_RETRY,
    SECRET_NOTE,
    URL_PATTERN,
    URL_SECRET_NOTE,
    destination_preflight,
    send_request,
)
from nodeloom.node_registry.webhook.artifact_links import with_locations


@node("webhook.post", resources="io", deterministic=False, retry=NETWORK_RETRY, output="status",
      preflight=destination_preflight)
async def webhook_post(
    ctx: NodeContext,
    url: Annotated[str, URL_PATTERN, f"the webhook's http or https URL; {URL_SECRET_NOTE}"],
    payload: Annotated[Any, Json, f"the JSON to post; {SECRET_NOTE}"],
    headers: Annotated[dict[str, Any], f"extra headers; {SECRET_NOTE}"] | None = None,
    timeout: Annotated[float, Range(0.1, 600), "seconds to wait for the answer"] = 10.0,
) -> int:
    """POST a JSON payload to a webhook; fails unless it answers 2xx. Redirects are not followed.

    An artifact in the payload (a video, an image) gets a `url` to fetch it from when the run is
    served by the API, a file `path` when it runs locally, beside its `$artifact` digest.
    """
    reply, _ = await send_request(
        ctx,
        "POST",
        url,
        headers=headers,
        content=jsonlib.dumps(with_locations(payload, ctx), ensure_ascii=False),
        content_type="application/json",
        timeout=timeout,
        follow_redirects=False,
        accept=lambda status: 200 <= status < 300,
    )
    return reply.status
