"""`/v1/nodes`: the node catalog, with JSON Schemas of every node's inputs and outputs."""

from __future__ import annotations

from fastapi import APIRouter

from nodeloom.api.deps import Reader, State
from nodeloom.api.errors import ERROR_RESPONSES, ApiError
from nodeloom.api.schemas import NodeCatalogResponse, NodeTypeInfo
from nodeloom.node_registry import catalog_entry

router = APIRouter(prefix="/v1/nodes", tags=["nodes"], responses=ERROR_RESPONSES)


@router.get("", response_model=NodeCatalogResponse, summary="The node catalog")
def list_nodes(state: State, identity: Reader) -> NodeCatalogResponse:
    return NodeCatalogResponse.model_validate(state.registry.catalog())


@router.get("/{node_type}", response_model=NodeTypeInfo, summary="One node type")
def get_node(node_type: str, state: State, identity: Reader) -> NodeTypeInfo:
    definition = state.registry.find(node_type)
    if definition is None:
        raise ApiError(404, "unknown_node_type", f"unknown node type {node_type!r}",
                       {"type": node_type, "suggestions": state.registry.suggest(node_type)})
    return NodeTypeInfo.model_validate(catalog_entry(definition.spec))
