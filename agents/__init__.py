"""nodeloom.agents: the drafting agent (text to graph), its metrics and benchmark.

`draft(text)` returns a `Draft` whose graph validates, or whose `refusal` says why none can
be made. The LangGraph machinery is imported on the first call, not with this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodeloom.agents.drafter import Draft


def draft(text: str, **options: Any) -> Draft:
    """Draft a graph for a request in words; see `nodeloom.agents.drafter.draft` for the options."""
    from nodeloom.agents.drafter import draft as make_draft

    return make_draft(text, **options)


__all__ = ["draft"]
