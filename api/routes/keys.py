"""`/v1/keys`: an admin key manages the keys of its own project."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from sqlmodel import col, select

from nodeloom.api.auth import create_key, key_info
from nodeloom.api.deps import Admin, DbSession, State
from nodeloom.api.errors import ERROR_RESPONSES, not_found
from nodeloom.api.schemas import KeyCreate, KeyCreated, KeyInfo
from nodeloom.api.tables import ApiKeyRow

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=ERROR_RESPONSES)


@router.post("", response_model=KeyCreated, status_code=201,
             summary="Create a key for this project; the secret is in this response only")
def create(body: KeyCreate, state: State, identity: Admin) -> KeyCreated:
    secret, info = create_key(state.engine, identity.project, body.scopes, body.name)
    return KeyCreated(**info.model_dump(), key=secret)


@router.get("", response_model=list[KeyInfo], summary="The keys of this project (never their secrets)")
def list_keys(session: DbSession, identity: Admin) -> list[KeyInfo]:
    rows = session.exec(select(ApiKeyRow).where(ApiKeyRow.project == identity.project)
                        .order_by(col(ApiKeyRow.created_at))).all()
    return [key_info(row) for row in rows]


@router.delete("/{key_id}", status_code=204, response_class=Response, summary="Revoke a key")
def revoke(key_id: str, state: State, session: DbSession, identity: Admin) -> Response:
    row = session.get(ApiKeyRow, key_id)
    if row is None or row.project != identity.project:
        raise not_found("key", key_id)
    if row.revoked_at is None:
        row.revoked_at = time.time()
        session.add(row)
        session.commit()
    state.keys.forget(key_id)
    return Response(status_code=204)
