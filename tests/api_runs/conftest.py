"""A real `nodeloom serve` (SQLite) that knows the marker nodes, for the run-control tests here
(retry, approval): each marker execution leaves a file, so a test counts what the server's worker
processes executed. One server per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from databases import database_url
from marker_nodes import MODULE
from processes import ApiServer, create_key

from nodeloom.api.client import Client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("api-runs")
    with database_url("sqlite", home) as db_url, ApiServer(db_url, home, options=["--node-module", MODULE]).running() \
            as instance:
        yield instance


@pytest.fixture(scope="module")
def run_key(server: ApiServer) -> str:
    return create_key(server.db_url, server.env, "alpha", "run")


@pytest.fixture
def api(server: ApiServer, run_key: str) -> Iterator[Client]:
    with Client(server.url, api_key=run_key) as client:
        yield client
