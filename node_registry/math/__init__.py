"""The math pack: small numeric nodes, used by examples, tests and benchmarks."""

from nodeloom.node_registry.math.nodes import add, clamp, compare, multiply, total

__all__ = ["add", "clamp", "compare", "multiply", "total"]
