"""FastAPI dependencies: the app's state, a database session, and the caller's identity."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from anyio import to_thread
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from nodeloom.api.auth import Identity, KeyChecker
from nodeloom.api.errors import ApiError
from nodeloom.api.metrics import ApiMetrics
from nodeloom.api.runner import RunService
from nodeloom.api.schemas import Scope
from nodeloom.api.settings import ApiSettings
from nodeloom.core.artifacts import ArtifactStore
from nodeloom.node_registry import NodeRegistry


@dataclass
class AppState:
    """What the routes share: built by `create_app`, kept on `app.state.nodeloom`."""

    settings: ApiSettings
    engine: Engine
    registry: NodeRegistry
    artifacts: ArtifactStore
    runs: RunService
    keys: KeyChecker
    metrics: ApiMetrics
    #: JSON bodies of finished runs by id (with their project): they no longer change
    finished_runs: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    def forget_run(self, run_id: str) -> None:
        self.finished_runs.pop(run_id, None)


async def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.nodeloom
    return state


State = Annotated[AppState, Depends(app_state)]


def db_session(state: State) -> Iterator[Session]:
    with Session(state.engine) as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key in `X-API-Key`")


def require(scope: Scope) -> Callable[..., Coroutine[Any, Any, Identity]]:
    """A dependency giving the caller's `Identity`; 401 without a valid key, 403 without `scope`."""

    async def identify(
        state: State,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header: Annotated[str | None, Security(_header)],
    ) -> Identity:
        key = bearer.credentials if bearer is not None else header
        if not key:
            raise ApiError(401, "unauthorized", "an API key is required: send `Authorization: Bearer <key>`")
        # a key checked in the last seconds is answered here, on the event loop; others read the database
        identity = state.keys.remembered(key)
        if identity is None:
            identity = await to_thread.run_sync(state.keys.identify, key)
        if identity is None:
            raise ApiError(401, "unauthorized", "the API key is unknown or revoked")
        if not identity.allows(scope):
            raise ApiError(403, "forbidden", f"this key lacks the {scope.value!r} scope",
                           {"needed": scope.value, "granted": sorted(s.value for s in identity.scopes)})
        return identity

    return identify


Reader = Annotated[Identity, Depends(require(Scope.READ))]
Runner = Annotated[Identity, Depends(require(Scope.RUN))]
Admin = Annotated[Identity, Depends(require(Scope.ADMIN))]
