"""`/v1/drafts`: a graph drafted from a request in words (the drafting agent, `nodeloom.agents`)."""

from __future__ import annotations

from fastapi import APIRouter

from nodeloom.api.deps import Runner, State
from nodeloom.api.errors import ERROR_RESPONSES
from nodeloom.api.schemas import DraftRequest, DraftResponse

router = APIRouter(prefix="/v1/drafts", tags=["drafts"], responses=ERROR_RESPONSES)


@router.post("", response_model=DraftResponse, summary="Draft a graph from a request in words")
def create_draft(request: DraftRequest, state: State, identity: Runner) -> DraftResponse:
    """Compose the graph from the recipe library (the server's LLM provider writes it when it is
    an OpenAI-compatible one, the composition being its fallback), validate and repair it.

    The answer's `graph` always validates against this server's catalog; `clauses` says per
    clause of the request which nodes serve it and which slots were read, `unserved` names the
    clauses nothing serves. When no graph can be made, `ok` is false and `refusal` says what
    could not be satisfied. With `base` (a graph document), `text` is an edit instruction and
    `diff` lists the changes. Save the graph with `POST /v1/graphs` and run it with `POST /v1/runs`.
    """
    from nodeloom.agents.drafter import DEFAULT_MAX_REPAIRS, draft

    settings = state.settings
    result = draft(
        request.text,
        provider=settings.draft_provider,
        base_url=settings.draft_base_url,
        model=settings.draft_model,
        registry=state.registry,
        max_repairs=DEFAULT_MAX_REPAIRS if request.max_repairs is None else request.max_repairs,
        base=request.base,
    )
    return DraftResponse.model_validate(result.to_json())
