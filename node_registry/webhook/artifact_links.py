"""Artifact references a receiver outside the run can follow: a URL or a file path beside the digest.

A payload that carries `{"$artifact": "sha256:..."}` alone names content its receiver has no
way to fetch. `with_locations` adds `url` when the run is served by the REST API (which sets
the `artifact_url` run setting, a template with `{digest}`), else `path`: the file in the
run's artifact store, for runs of the command line or the SDK on this machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodeloom.core.artifacts import ArtifactRef
from nodeloom.core.context import NodeContext
from nodeloom.core.errors import NodeloomError

#: the run setting (`RunConfig.settings`) the API sets: a URL template with a `{digest}` field
ARTIFACT_URL_SETTING = "artifact_url"


def with_locations(value: Any, ctx: NodeContext) -> Any:
    """`value` (any JSON) with every artifact reference in it given a `url` or a `path`."""
    template = ctx.config.settings.get(ARTIFACT_URL_SETTING)

    def location(ref: ArtifactRef) -> dict[str, str]:
        if isinstance(template, str) and template:
            return {"url": template.format(digest=ref.digest)}
        try:
            return {"path": str(ctx.artifacts.path(ref).resolve())}
        except NodeloomError:  # not in this store (a remote one without a local copy): the digest alone
            return {}

    def walk(item: Any) -> Any:
        if isinstance(item, ArtifactRef):
            return {**item.to_json(), **location(item)}
        if ArtifactRef.looks_like_json(item):
            try:
                return {**item, **location(ArtifactRef.from_json(item))}
            except ValueError:
                return item
        if isinstance(item, Mapping):
            return {key: walk(child) for key, child in item.items()}
        if isinstance(item, list | tuple):
            return [walk(child) for child in item]
        return item

    return walk(value)
