"""`/v1/triggers`: webhook triggers of saved graphs. An admin key creates them; a delivery
(`POST /v1/triggers/{id}`) carries no API key but the HMAC signature of its body."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Header, Request, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from nodeloom.api.deps import Admin, DbSession, Reader, State
from nodeloom.api.errors import ERROR_RESPONSES, ApiError, not_found
from nodeloom.api.routes.graphs import saved_graph
from nodeloom.api.schemas import ErrorResponse, RunSubmit, TriggerCreate, TriggerCreated, TriggerFired, TriggerInfo
from nodeloom.api.signing import DELIVERY_HEADER, SIGNATURE_HEADER
from nodeloom.api.tables import TriggerRow
from nodeloom.api.triggers import (
    check_input_map,
    check_signature,
    delivery_inputs,
    new_secret,
    parse_body,
    trigger_identity,
)

router = APIRouter(prefix="/v1/triggers", tags=["triggers"], responses=ERROR_RESPONSES)


def _info(row: TriggerRow) -> TriggerInfo:
    return TriggerInfo(id=row.id, name=row.name, graph_id=row.graph_id, version=row.graph_version,
                       input_map=row.input_map, url=f"/v1/triggers/{row.id}", created_at=row.created_at)


def _live(row: TriggerRow | None, project: str | None, trigger_id: str) -> TriggerRow:
    if row is None or row.deleted_at is not None or (project is not None and row.project != project):
        raise not_found("trigger", trigger_id)
    return row


@router.post("", response_model=TriggerCreated, status_code=201,
             summary="Create a webhook trigger of a saved graph; its signing secret is in this response only")
def create_trigger(body: TriggerCreate, session: DbSession, identity: Admin) -> TriggerCreated:
    graph = saved_graph(session, identity.project, body.graph_id, body.version)
    if body.input_map is not None:
        check_input_map(body.input_map, graph.inputs)
    row = TriggerRow(id=uuid.uuid4().hex, project=identity.project, name=body.name, graph_id=body.graph_id,
                     graph_version=body.version, secret=new_secret(), input_map=body.input_map, created_at=time.time())
    session.add(row)
    session.commit()
    return TriggerCreated(**_info(row).model_dump(), secret=row.secret)


@router.get("", response_model=list[TriggerInfo], summary="The project's triggers (never their secrets)")
def list_triggers(session: DbSession, identity: Reader) -> list[TriggerInfo]:
    rows = session.exec(select(TriggerRow).where(TriggerRow.project == identity.project,
                                                 col(TriggerRow.deleted_at).is_(None))
                        .order_by(col(TriggerRow.created_at))).all()
    return [_info(row) for row in rows]


@router.get("/{trigger_id}", response_model=TriggerInfo, summary="A trigger")
def get_trigger(trigger_id: str, session: DbSession, identity: Reader) -> TriggerInfo:
    return _info(_live(session.get(TriggerRow, trigger_id), identity.project, trigger_id))


@router.delete("/{trigger_id}", status_code=204, response_class=Response, summary="Delete a trigger")
def delete_trigger(trigger_id: str, session: DbSession, identity: Admin) -> Response:
    row = _live(session.get(TriggerRow, trigger_id), identity.project, trigger_id)
    row.deleted_at = time.time()
    session.add(row)
    session.commit()
    return Response(status_code=204)


@router.post(
    "/{trigger_id}", response_model=TriggerFired, status_code=202,
    summary="Deliver an event: the signed JSON body becomes the inputs of a new run",
    responses={200: {"model": TriggerFired, "description": "this delivery id had already started a run"},
               409: {"model": ErrorResponse, "description": "this delivery id came before with another body"}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
)
async def deliver(
    trigger_id: str,
    request: Request,
    state: State,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER, max_length=200,
                                            description="sha256=<hex HMAC-SHA256 of the body>")] = None,
    delivery: Annotated[str | None, Header(alias=DELIVERY_HEADER, max_length=150,
                                           description="the sender's delivery id: sent again, no new run")] = None,
) -> Response:
    body = await request.body()

    def fire() -> TriggerFired:
        with Session(state.engine) as session:
            trigger = _live(session.get(TriggerRow, trigger_id), None, trigger_id)
            session.expunge(trigger)
        check_signature(trigger.secret, body, signature)
        inputs = delivery_inputs(trigger, parse_body(body))
        try:
            submit = RunSubmit(graph_id=trigger.graph_id, version=trigger.graph_version, inputs=inputs)
        except ValidationError as error:  # inputs past the edge's bounds (bad unicode, too deep)
            raise ApiError(422, "invalid_request", "the delivery's inputs are out of bounds",
                           {"errors": [issue["msg"] for issue in error.errors()]}) from None
        key = f"trigger:{trigger.id}:{delivery}" if delivery else None
        run_id, created = state.runs.submit(trigger_identity(trigger), submit, key)
        return TriggerFired(run_id=run_id, created=created)

    fired = await to_thread.run_sync(fire)
    return Response(fired.model_dump_json(), status_code=202 if fired.created else 200, media_type="application/json")
