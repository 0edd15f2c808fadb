"""Executor overhead per node in instructions: deterministic where wall time on a shared machine is not.

Builds 11 graphs of bench/overhead.py's shapes, warms a `LocalExecutor` on the first, then runs
`runs` more cold (result cache cleared before each). Run it under callgrind twice, with `runs`
10 and 0; the difference of the two instruction totals, divided by 10 x N, is the cost of one
cold node (planning, validation and execution):

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/overhead_instructions.py chain 100 10
    (the same with 0 as the last argument)

Two identical runs of the pair differed by about 2k instructions per node (chain 100).
"""

from __future__ import annotations

import argparse
import gc
import tempfile

from overhead import chain_graph, wide_graph

from nodeloom.executors import LocalExecutor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shape", choices=("chain", "wide"))
    parser.add_argument("nodes", type=int)
    parser.add_argument("runs", type=int)
    args = parser.parse_args()
    make = chain_graph if args.shape == "chain" else wide_graph
    graphs = [make(args.nodes) for _ in range(11)]
    with tempfile.TemporaryDirectory() as folder, LocalExecutor(artifacts=folder) as executor:
        executor.cache.clear()
        assert executor.run(graphs[0], {"x": 1.0}).ok  # warm: threads, registry, imports
        # the garbage collector's counters start from zero: otherwise whether the measured runs meet one
        # more older-generation collection depends on how many objects start-up happened to allocate
        gc.collect()
        for graph in graphs[1 : 1 + args.runs]:
            executor.cache.clear()
            assert executor.run(graph, {"x": 1.0}).ok


if __name__ == "__main__":
    main()
