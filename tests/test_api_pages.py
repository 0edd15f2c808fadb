"""Listing pages of the SDK clients against a real `nodeloom serve`: a page iterates over its
items (not over pydantic's field pairs) and keeps its paging figures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from databases import database_url
from processes import ApiServer
from test_api_server import _create_key_cli, greeting_graph

from nodeloom.api.client import AsyncClient, Client
from nodeloom.api.schemas import GraphSummary, RunSummary


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    home = tmp_path_factory.mktemp("api-pages")
    with database_url("sqlite", home, "nl_api") as db_url:
        server = ApiServer(db_url, home)
        server.start()
        try:
            yield server.url, _create_key_cli(server, "pages", "admin")
        finally:
            server.stop()


def test_a_graph_page_iterates_over_its_graphs(served: tuple[str, str]) -> None:
    url, key = served
    marker = uuid.uuid4().hex[:8]
    with Client(url, api_key=key) as api:
        ids = {api.create_graph(greeting_graph(f"paged {marker} {i}")).id for i in range(3)}
        page = api.list_graphs(name=f"paged {marker}", limit=2)
        graphs = list(page)
        assert all(isinstance(graph, GraphSummary) for graph in graphs) and len(page) == 2
        assert {graph.id for graph in graphs} < ids
        assert (page.total, page.limit, page.offset) == (3, 2, 0)


def test_a_run_page_iterates_over_its_runs(served: tuple[str, str]) -> None:
    url, key = served
    with Client(url, api_key=key) as api:
        graph = api.create_graph(greeting_graph("runs paged"))
        run = api.wait(api.submit(graph_id=graph.id, inputs={"name": "x"}).id)
        runs = list(api.list_runs(graph_id=graph.id))
        assert [r.id for r in runs] == [run.id] and isinstance(runs[0], RunSummary)


def test_an_async_client_page_iterates_over_its_graphs(served: tuple[str, str]) -> None:
    url, key = served

    async def listed() -> list[str]:
        async with AsyncClient(url, api_key=key) as api:
            graph = await api.create_graph(greeting_graph("async paged"))
            return [g.id for g in await api.list_graphs(name="async paged")] + [graph.id]

    *found, created = asyncio.run(listed())
    assert found == [created]
