"""`FinishedRunReads`: stored finished-run bodies go out before routing, only to keys that may see them.

The middleware wraps a small Starlette app whose one route answers 418 "routed", so each
test sees whether the middleware answered or handed the request on. Keys are real
(`create_key` into a migrated SQLite database, checked by a real `KeyChecker`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from nodeloom.api.auth import KeyChecker, create_key
from nodeloom.api.db import make_engine, upgrade_database
from nodeloom.api.fastpath import FinishedRunReads
from nodeloom.api.schemas import Scope

RUN = "0123456789abcdef0123456789abcdef"
BODY = b'{"id": "0123456789abcdef0123456789abcdef", "status": "succeeded"}'


async def routed(request: Request) -> PlainTextResponse:
    return PlainTextResponse("routed", status_code=418)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[SimpleNamespace]:
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    upgrade_database(engine)
    keys = KeyChecker(engine, ttl=60)
    alpha, alpha_info = create_key(engine, "alpha", [Scope.READ])
    beta, _ = create_key(engine, "beta", [Scope.ADMIN])
    app = Starlette(routes=[Route("/{path:path}", routed, methods=["GET", "POST"])])
    app.state.nodeloom = SimpleNamespace(finished_runs={RUN: ("alpha", BODY)}, keys=keys)
    app.add_middleware(FinishedRunReads)
    yield SimpleNamespace(app=app, keys=keys, alpha=alpha, alpha_id=alpha_info.id, beta=beta)
    engine.dispose()


def _get(app: Starlette, path: str, headers: dict[str, str], method: str = "GET") -> httpx.Response:
    async def request() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.request(method, path, headers=headers)

    return asyncio.run(request())


def test_a_checked_key_of_the_runs_project_gets_the_stored_body(setup: SimpleNamespace) -> None:
    assert setup.keys.identify(setup.alpha) is not None  # checked once, as the route does
    for headers in ({"Authorization": f"Bearer {setup.alpha}"}, {"authorization": f"bearer {setup.alpha}"},
                    {"X-API-Key": setup.alpha}, {"Authorization": "Basic eDp5", "X-API-Key": setup.alpha}):
        answer = _get(setup.app, f"/v1/runs/{RUN}", headers)
        assert (answer.status_code, answer.content) == (200, BODY), headers
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["content-length"] == str(len(BODY))


def test_everything_it_cannot_answer_exactly_goes_to_the_app(setup: SimpleNamespace) -> None:
    setup.keys.identify(setup.alpha)
    setup.keys.identify(setup.beta)
    alpha = {"Authorization": f"Bearer {setup.alpha}"}
    cases = [
        (f"/v1/runs/{RUN}", {}, "GET"),                                       # no key
        (f"/v1/runs/{RUN}", {"Authorization": "Bearer nl_unknown_key"}, "GET"),  # a key never checked
        (f"/v1/runs/{RUN}", {"Authorization": f"Bearer {setup.beta}"}, "GET"),   # another project's key
        (f"/v1/runs/{RUN}?wait=5", alpha, "GET"),                             # a query string
        (f"/v1/runs/{RUN}", alpha, "POST"),                                   # another method
        (f"/v1/runs/{RUN}/events", alpha, "GET"),                             # another route
        ("/v1/runs/ffffffffffffffffffffffffffffffff", alpha, "GET"),          # a run not stored
    ]
    for path, headers, method in cases:
        answer = _get(setup.app, path, headers, method)
        assert (answer.status_code, answer.text) == (418, "routed"), (path, headers, method)


def test_a_revoked_key_is_not_answered_from_memory(setup: SimpleNamespace) -> None:
    setup.keys.identify(setup.alpha)
    setup.keys.forget(setup.alpha_id)  # what revoking over HTTP does
    answer = _get(setup.app, f"/v1/runs/{RUN}", {"Authorization": f"Bearer {setup.alpha}"})
    assert answer.status_code == 418
