"""`/v1/graphs`: saved graphs. Every update makes a new immutable version; saving validates."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy import func
from sqlmodel import Session, col, select

from nodeloom.api.deps import DbSession, Reader, Runner, State
from nodeloom.api.errors import ERROR_RESPONSES, ApiError, not_found
from nodeloom.api.graph_store import project_catalog
from nodeloom.api.inputs import MAX_INT
from nodeloom.api.runner import check_node_count, checked_graph
from nodeloom.api.schemas import GraphCreate, GraphInfo, GraphPage, GraphSummary, GraphUpdate, GraphVersionInfo
from nodeloom.api.tables import GraphRow, GraphTagRow, GraphVersionRow
from nodeloom.core.graph import Graph

router = APIRouter(prefix="/v1/graphs", tags=["graphs"], responses=ERROR_RESPONSES)


def _clean_tags(tags: list[str]) -> list[str]:
    cleaned = sorted({tag.strip() for tag in tags if tag.strip()})
    for tag in cleaned:
        if len(tag) > 100:
            raise ApiError(422, "invalid_request", "a tag is longer than 100 characters", {"tag": tag[:100]})
    return cleaned


def _set_tags(session: Session, graph_id: str, cleaned: list[str]) -> None:
    """Replace a graph's tags with `cleaned` (from `_clean_tags`), as ORM changes: they are written
    at the session's flush, under the SQLite write lock (`nodeloom.api.db`)."""
    existing = {row.tag: row for row in session.exec(select(GraphTagRow).where(GraphTagRow.graph_id == graph_id))}
    for tag, row in existing.items():
        if tag not in cleaned:
            session.delete(row)
    session.add_all(GraphTagRow(graph_id=graph_id, tag=tag) for tag in cleaned if tag not in existing)


def _tags_of(session: Session, graph_ids: list[str]) -> dict[str, list[str]]:
    """Graph id -> its tags, sorted, for a page of graphs (one query)."""
    tags: dict[str, list[str]] = {graph_id: [] for graph_id in graph_ids}
    if graph_ids:
        query = select(GraphTagRow).where(col(GraphTagRow.graph_id).in_(graph_ids)).order_by(col(GraphTagRow.tag))
        for row in session.exec(query):
            tags[row.graph_id].append(row.tag)
    return tags


def _summary(row: GraphRow, tags: list[str]) -> GraphSummary:
    return GraphSummary(id=row.id, name=row.name, description=row.description, tags=tags,
                        version=row.latest_version, created_at=row.created_at, updated_at=row.updated_at)


def _info(session: Session, row: GraphRow, version: GraphVersionRow) -> GraphInfo:
    summary = _summary(row, _tags_of(session, [row.id])[row.id])
    return GraphInfo(**summary.model_dump(), graph=version.document, graph_version=version.version)


def _owned(session: Session, project: str, graph_id: str) -> GraphRow:
    row = session.get(GraphRow, graph_id)
    if row is None or row.project != project or row.deleted_at is not None:
        raise not_found("graph", graph_id)
    return row


def saved_graph(session: Session, project: str, graph_id: str, version: int | None) -> Graph:
    """A saved graph of `project` at `version` (None: the newest); 404 naming what is missing."""
    row = _owned(session, project, graph_id)
    stored = session.get(GraphVersionRow, (graph_id, version or row.latest_version))
    if stored is None:
        raise ApiError(404, "not_found", f"graph {graph_id!r} has no version {version}",
                       {"graph": graph_id, "version": version})
    return Graph.from_json(dict(stored.document))


def _validated_document(state: State, document: dict[str, Any], project: str) -> dict[str, Any]:
    check_node_count(document, state.settings.max_nodes)
    # a saved graph may use the project's other saved graphs as nodes (graph:NAME@VERSION)
    return checked_graph(document, project_catalog(state.registry, state.engine, project)).to_json()


@router.post("", response_model=GraphInfo, status_code=201, summary="Save a graph (validated: 422 lists every problem)")
def create_graph(body: GraphCreate, state: State, session: DbSession, identity: Runner) -> GraphInfo:
    document = _validated_document(state, body.graph, identity.project)
    tags = _clean_tags(body.tags)
    now = time.time()
    row = GraphRow(id=uuid.uuid4().hex, project=identity.project, name=str(document.get("name", "graph"))[:200],
                   description=str(document.get("description", "")), latest_version=1, created_at=now, updated_at=now)
    version = GraphVersionRow(graph_id=row.id, version=1, document=document, created_at=now)
    session.add(row)
    session.flush()
    session.add(version)
    _set_tags(session, row.id, tags)
    session.commit()
    return _info(session, row, version)


@router.get("", response_model=GraphPage, summary="List graphs, newest first; filter by name (substring) and tag")
def list_graphs(
    session: DbSession,
    identity: Reader,
    name: Annotated[str | None, Query(max_length=200, description="part of the name, any case")] = None,
    tag: Annotated[str | None, Query(max_length=100, description="graphs carrying this tag")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> GraphPage:
    query = select(GraphRow).where(GraphRow.project == identity.project, col(GraphRow.deleted_at).is_(None))
    if name:
        query = query.where(func.lower(GraphRow.name).contains(name.lower(), autoescape=True))
    if tag:
        query = query.where(col(GraphRow.id).in_(select(GraphTagRow.graph_id).where(GraphTagRow.tag == tag)))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(GraphRow.created_at).desc(), col(GraphRow.id))
                        .offset(offset).limit(limit)).all()
    tags = _tags_of(session, [row.id for row in rows])
    return GraphPage(items=[_summary(row, tags[row.id]) for row in rows], total=total, limit=limit, offset=offset)


@router.get("/{graph_id}", response_model=GraphInfo, summary="A graph at its newest version, or at `version`")
def get_graph(
    graph_id: str, session: DbSession, identity: Reader, version: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
) -> GraphInfo:
    row = _owned(session, identity.project, graph_id)
    stored = session.get(GraphVersionRow, (graph_id, version or row.latest_version))
    if stored is None:
        raise ApiError(404, "not_found", f"graph {graph_id!r} has no version {version}",
                       {"graph": graph_id, "version": version})
    return _info(session, row, stored)


@router.get("/{graph_id}/versions", response_model=list[GraphVersionInfo], summary="The versions of a graph")
def list_versions(graph_id: str, session: DbSession, identity: Reader) -> list[GraphVersionInfo]:
    _owned(session, identity.project, graph_id)
    rows = session.exec(select(GraphVersionRow).where(GraphVersionRow.graph_id == graph_id)
                        .order_by(col(GraphVersionRow.version))).all()
    return [GraphVersionInfo(version=row.version, created_at=row.created_at) for row in rows]


@router.put("/{graph_id}", response_model=GraphInfo,
            summary="Update a graph: a new document makes a new version; tags are replaced")
def update_graph(graph_id: str, body: GraphUpdate, state: State, session: DbSession, identity: Runner) -> GraphInfo:
    row = _owned(session, identity.project, graph_id)
    tags = None if body.tags is None else _clean_tags(body.tags)
    # checked before any write
    document = None if body.graph is None else _validated_document(state, body.graph, identity.project)
    now = time.time()
    if tags is not None:
        _set_tags(session, graph_id, tags)
    if document is not None:
        row.latest_version += 1
        row.name = str(document.get("name", "graph"))[:200]
        row.description = str(document.get("description", ""))
        session.add(GraphVersionRow(graph_id=graph_id, version=row.latest_version, document=document, created_at=now))
    row.updated_at = now
    session.add(row)
    session.commit()
    stored = session.get(GraphVersionRow, (graph_id, row.latest_version))
    assert stored is not None
    return _info(session, row, stored)


@router.delete("/{graph_id}", status_code=204, response_class=Response,
               summary="Delete a graph (its runs stay, with the document they ran)")
def delete_graph(graph_id: str, session: DbSession, identity: Runner) -> Response:
    row = _owned(session, identity.project, graph_id)
    row.deleted_at = time.time()
    session.add(row)
    session.commit()
    return Response(status_code=204)
