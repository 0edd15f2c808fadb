"""What the drafting benchmark's split tests share: the reserved requests and the check of a reference graph."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from nodeloom.core.validate import validate_graph
from nodeloom.node_registry import NodeRegistry
from nodeloom.node_registry.control.map import map_problems as item_problems

#: requests that tests check end to end as known answers: no benchmark case may be one of them
RESERVED_REQUESTS = (
    "Create a photo of a blue backpack on a wooden table.",
    "Turn the release notes into Spanish and into Italian.",
    "Get the JSON at an address, pull out its title field, rewrite it as a tweet and send it to a webhook.",
)
#: control.map's own inputs; any other input of a map is passed to its node type for every item
MAP_OWN_INPUTS = {"node", "items", "item_input", "inputs", "concurrency", "output"}


def normalized(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def map_problems(document: Mapping[str, Any], registry: NodeRegistry) -> Iterator[dict[str, Any]]:
    """What `control.map` would refuse at run time in `document`, which validation cannot see.

    Validation checks a map's own ports; whether its `item_input` and `inputs` fit the node type
    it applies is checked when it runs (`plan_map`). This runs that check on the literal values.
    """
    for node_id, spec in document["nodes"].items():
        if spec["type"] != "control.map":
            continue
        given = spec["inputs"]
        definition = registry.get(given["node"])
        linked = {name for name in given if name not in MAP_OWN_INPUTS}
        for name in sorted(linked):
            if name not in definition.spec.input_map and definition.spec.variadic is None:
                yield {"node": node_id, "port": name, "message": f"{given['node']} has no input {name!r}"}
        constants = dict(given.get("inputs") or {})
        for problem in item_problems(definition, given["item_input"], constants, [], given.get("output")):
            missing = {port.name for port in definition.spec.inputs
                       if port.required and port.name not in constants and port.name != given["item_input"]}
            if problem.code == "missing_input" and missing <= linked:
                continue  # an input given as a link of the map is not missing
            yield {"node": node_id, "port": problem.port, "message": problem.message, "code": problem.code}


def graph_problems(document: Mapping[str, Any], registry: NodeRegistry) -> list[dict[str, Any]]:
    """Validation's issues and the map check's, as dicts: empty for a reference a draft can be scored against."""
    return [issue.to_dict() for issue in validate_graph(document, registry)] + list(map_problems(document, registry))
