"""`/healthz` and `/metrics`: for load balancers and Prometheus, no key needed."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from nodeloom.api.deps import State
from nodeloom.api.schemas import Health

router = APIRouter(tags=["service"])


@router.get("/healthz", response_model=Health, summary="Liveness: the server answers (touches no database)")
async def healthz(state: State) -> Health:
    from nodeloom import __version__

    return Health(version=__version__, executor=state.settings.executor, database=state.engine.dialect.name)


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                     "description": "Prometheus text format: runs by state, node durations, queue depths"}},
)
def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
