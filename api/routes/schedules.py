"""`/v1/schedules`: run a saved graph on a cron schedule (see `nodeloom.api.schedules` for the
overlap and missed-fire policies)."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Response
from sqlmodel import Session, col, select

from nodeloom.api.deps import Admin, DbSession, Reader
from nodeloom.api.errors import ERROR_RESPONSES, not_found
from nodeloom.api.routes.graphs import saved_graph
from nodeloom.api.schedules import next_fire
from nodeloom.api.schemas import CatchUp, ScheduleCreate, ScheduleInfo, ScheduleUpdate
from nodeloom.api.tables import ScheduleRow
from nodeloom.core import check_run_inputs
from nodeloom.core.errors import GraphValidationError

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], responses=ERROR_RESPONSES)


def _info(row: ScheduleRow) -> ScheduleInfo:
    return ScheduleInfo(
        id=row.id, name=row.name, graph_id=row.graph_id, version=row.graph_version, cron=row.cron,
        timezone=row.timezone, inputs=row.inputs, allow_overlap=row.allow_overlap, catchup=CatchUp(row.catchup),
        enabled=row.enabled, next_fire_at=row.next_fire_at, last_fire_at=row.last_fire_at,
        last_run_id=row.last_run_id, fires=row.fires, skipped_fires=row.skipped_fires,
        last_skip_reason=row.last_skip_reason, created_at=row.created_at,
    )


def _owned(session: Session, project: str, schedule_id: str) -> ScheduleRow:
    row = session.get(ScheduleRow, schedule_id)
    if row is None or row.project != project or row.deleted_at is not None:
        raise not_found("schedule", schedule_id)
    return row


@router.post("", response_model=ScheduleInfo, status_code=201,
             summary="Schedule runs of a saved graph (422 for a cron expression, time zone or inputs that do not fit)")
def create_schedule(body: ScheduleCreate, session: DbSession, identity: Admin) -> ScheduleInfo:
    graph = saved_graph(session, identity.project, body.graph_id, body.version)
    now = time.time()
    first = next_fire(body.cron, body.timezone, now)
    _, issues = check_run_inputs(graph, body.inputs)
    if issues:
        raise GraphValidationError(issues)
    row = ScheduleRow(
        id=uuid.uuid4().hex, project=identity.project, name=body.name, graph_id=body.graph_id,
        graph_version=body.version, cron=body.cron, timezone=body.timezone, inputs=body.inputs,
        allow_overlap=body.allow_overlap, catchup=body.catchup.value, enabled=body.enabled,
        next_fire_at=first, created_at=now,
    )
    session.add(row)
    session.commit()
    return _info(row)


@router.get("", response_model=list[ScheduleInfo], summary="The project's schedules")
def list_schedules(session: DbSession, identity: Reader) -> list[ScheduleInfo]:
    rows = session.exec(select(ScheduleRow).where(ScheduleRow.project == identity.project,
                                                  col(ScheduleRow.deleted_at).is_(None))
                        .order_by(col(ScheduleRow.created_at))).all()
    return [_info(row) for row in rows]


@router.get("/{schedule_id}", response_model=ScheduleInfo, summary="A schedule: next and last fire, counts")
def get_schedule(schedule_id: str, session: DbSession, identity: Reader) -> ScheduleInfo:
    return _info(_owned(session, identity.project, schedule_id))


@router.patch("/{schedule_id}", response_model=ScheduleInfo, summary="Pause or resume a schedule")
def update_schedule(schedule_id: str, body: ScheduleUpdate, session: DbSession, identity: Admin) -> ScheduleInfo:
    row = _owned(session, identity.project, schedule_id)
    if body.enabled and not row.enabled:  # resumed: from the next time after now, not the fires paused through
        row.next_fire_at = next_fire(row.cron, row.timezone, time.time())
    row.enabled = body.enabled
    session.add(row)
    session.commit()
    return _info(row)


@router.delete("/{schedule_id}", status_code=204, response_class=Response, summary="Delete a schedule")
def delete_schedule(schedule_id: str, session: DbSession, identity: Admin) -> Response:
    row = _owned(session, identity.project, schedule_id)
    row.deleted_at = time.time()
    session.add(row)
    session.commit()
    return Response(status_code=204)
