"""The critique -> refine -> repeat loop (EditThinker), as the agents package offers it.

The loop lives beside the node that runs it (`nodeloom.node_registry.control.refine_loop`),
because node packs may import nothing from `agents`; this module is its public face.
"""

from nodeloom.node_registry.control.refine_loop import (
    RULE_NAMES,
    Attempt,
    Combine,
    Critic,
    Critique,
    DecideBy,
    DistinctItems,
    Generator,
    ImageBrightness,
    ImageSize,
    Keep,
    MatchesSchema,
    MaxLength,
    Refinement,
    RefineOptions,
    RequiredWords,
    Turn,
    combine,
    refine,
    rule_critics,
)

__all__ = [
    "RULE_NAMES",
    "Attempt",
    "Combine",
    "Critic",
    "Critique",
    "DecideBy",
    "DistinctItems",
    "Generator",
    "ImageBrightness",
    "ImageSize",
    "Keep",
    "MatchesSchema",
    "MaxLength",
    "RefineOptions",
    "Refinement",
    "RequiredWords",
    "Turn",
    "combine",
    "refine",
    "rule_critics",
]
