"""What a run would do, before it runs: for each node, whether it comes from the result cache
or runs, and on which queue.

Cache keys are computed from the graph and the input values alone (a node's key folds in its
upstream nodes' keys, not their outputs), so the preview names exactly the keys the run will
look up. What it cannot know: a non-deterministic node whose `seed` arrives over a link (its
key needs that value: it is shown as running), and the items of a `control.map` (they are
known only when its list arrives).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nodeloom.core.cache import ResultCache, value_token
from nodeloom.core.plan import ExecutionPlan

#: `cached`: the result is in the cache; `run`: it is not (or the node is never cached)
Action = Literal["cached", "run"]


@dataclass(frozen=True, slots=True)
class NodePreview:
    node: str
    type: str
    action: Action
    #: why it runs: `not_cached`, `never_cached` (non-deterministic without a seed, or no stable
    #: literal), `seed_from_link`, `cache_off`; None when it comes from the cache
    reason: str | None
    #: the cache key the run will look up (None: the node has none in this run)
    cache_key: str | None
    #: the queue the node goes to on a distributed executor, and its lane kind locally
    queue: str

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "type": self.type, "action": self.action, "reason": self.reason,
                "cache_key": self.cache_key, "queue": self.queue}


def preview_run(plan: ExecutionPlan, input_values: Mapping[str, Any], cache: ResultCache | None) -> list[NodePreview]:
    """The preview of a run of `plan` with `input_values` (defaults applied, as `prepare_run`
    gives them) against `cache` (None: caching is off), in an order where parents come first."""
    tokens = {name: value_token(value) for name, value in input_values.items()}
    keys: dict[str, str | None] = {}
    previews: list[NodePreview] = []
    for node_id in _parents_first(plan):
        planned = plan.nodes[node_id]
        reason: str | None = None
        seed: Any = None
        if planned.seeded:
            seed = planned.literals.get("seed")
            for port, name in planned.graph_inputs:
                if port == "seed":
                    seed = input_values.get(name)
            if any(port == "seed" for port, _, _ in planned.links):
                reason = "seed_from_link"
        key = None if reason else planned.key(tokens, keys, seed)
        keys[node_id] = key
        if reason is None and key is None:
            reason = "never_cached"
        elif reason is None and cache is None:
            reason = "cache_off"
        elif reason is None and cache is not None and cache.get(key or "") is None:
            reason = "not_cached"
        previews.append(NodePreview(node_id, planned.definition.spec.type, "run" if reason else "cached", reason, key,
                                    planned.resources.queue_name))
    return previews


def _parents_first(plan: ExecutionPlan) -> list[str]:
    waiting = dict(plan.upstream_counts)
    ready = list(plan.roots)
    ordered: list[str] = []
    while ready:
        node_id = ready.pop(0)
        ordered.append(node_id)
        for child in plan.nodes[node_id].downstream:
            waiting[child] -= 1
            if not waiting[child]:
                ready.append(child)
    return ordered
