"""Saved graphs of a project as a graph source: a graph submitted to the API (or saved in it)
may use `graph:NAME@VERSION` for any graph of its own project, by the graph's name and one of
its versions. When several live graphs of the project share a name, the newest is used."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nodeloom.api.tables import GraphRow, GraphVersionRow
from nodeloom.core.graph import Graph
from nodeloom.core.subgraphs import CatalogWithGraphs
from nodeloom.core.validate import NodeCatalog


class ProjectGraphs:
    """The saved graphs of one project, looked up in the API's database."""

    def __init__(self, engine: Engine, project: str) -> None:
        self.engine = engine
        self.project = project

    def _rows(self, session: Session, name: str) -> list[GraphRow]:
        query = (select(GraphRow)
                 .where(GraphRow.project == self.project, GraphRow.name == name, col(GraphRow.deleted_at).is_(None))
                 .order_by(col(GraphRow.created_at).desc()))
        return list(session.exec(query).all())

    def find_graph(self, name: str, version: str) -> Graph | None:
        if not version.isdigit():
            return None
        with Session(self.engine) as session:
            rows = self._rows(session, name)
            if not rows:
                return None
            stored = session.get(GraphVersionRow, (rows[0].id, int(version)))
            return None if stored is None else Graph.from_json(dict(stored.document))

    def graph_versions(self, name: str) -> list[str]:
        with Session(self.engine) as session:
            rows = self._rows(session, name)
            if not rows:
                return []
            return [str(number) for number in range(1, rows[0].latest_version + 1)]


def project_catalog(catalog: NodeCatalog, engine: Engine, project: str) -> CatalogWithGraphs:
    """`catalog` that also knows the saved graphs of `project` (before the registry's own)."""
    return CatalogWithGraphs(catalog, ProjectGraphs(engine, project))
