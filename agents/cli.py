"""`nodeloom draft` and `nodeloom bench`: the drafting agent and its benchmark on the command line.

Loaded lazily by `nodeloom.cli` (LangGraph and the embedding model are imported only here).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from nodeloom.core.errors import NodeloomError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_REFUSED = 1
EXIT_RUN_FAILED = 1
PROVIDERS = click.Choice(["local", "openai"])
_PROVIDER_HELP = "LLM that writes the draft: local (embedded SmolLM2) or openai (an OpenAI-compatible server)."
_BASE_URL_HELP = "Server for --provider openai, e.g. http://127.0.0.1:8080/v1 [default: $NODELOOM_OPENAI_BASE_URL]."


def _progress(quiet: bool) -> Any:
    if quiet:
        return None

    def show(step: str, message: str) -> None:
        first = message.strip().splitlines()[0] if message.strip() else ""
        err.print(f"[cyan]{step:>9}[/] {first[:110]}", markup=True, highlight=False)

    return show


@click.command()
@click.argument("request")
@click.option("--provider", type=PROVIDERS, default="local", show_default=True, help=_PROVIDER_HELP)
@click.option("--base-url", default=None, help=_BASE_URL_HELP)
@click.option("--model", default="", help="Model name for --provider openai (as the server knows it).")
@click.option("--max-repairs", type=click.IntRange(0, 10), default=2, show_default=True,
              help="Rounds of feeding the validator's errors back to the LLM before the planner completes the draft.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write the graph JSON to this file (run it later with `nodeloom run FILE`).")
@click.option("--run", "run_it", is_flag=True,
              help="Run the draft at once with the local executor, inputs at their defaults.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole draft (graph, plan, inputs, refusal) as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@click.option("--edit", "edit_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Edit this graph file as REQUEST says (e.g. \"add a voice-over and make it vertical\").")
def draft(request: str, provider: str, base_url: str | None, model: str, max_repairs: int, out_file: str | None,
          run_it: bool, as_json: bool, quiet: bool, edit_file: str | None) -> None:
    """Draft a graph from a REQUEST in words, e.g. "summarise a web page and read it aloud".

    The request is split into clauses; each clause is served by tested recipes from the recipe
    library (docs/drafting-recipes.md), wired through their typed inputs and outputs. With the
    embedded provider no LLM is called; with --provider openai the model writes the program from
    the recipe menu and the composed draft, and the composition is the fallback. The graph printed
    always validates; per clause it says which nodes serve it and which slots were read, and it
    names any clause nothing served. When nothing in the catalog can make what is asked for, it
    says so and exits with status 1. Graph inputs without a default are listed: set them with
    `nodeloom run FILE --set NAME=VALUE`. With --edit FILE the request edits that graph (add,
    remove, replace, rewire, set values) and the changes are printed as a diff.
    """
    from nodeloom.agents.drafter import draft as make_draft

    base: Any = None
    if edit_file is not None:
        try:
            base = json.loads(Path(edit_file).read_text(encoding="utf-8"))
        except ValueError as error:
            raise click.ClickException(f"{edit_file} is not a graph JSON file: {error}") from None
    result = make_draft(request, provider=provider, base_url=base_url, model=model, max_repairs=max_repairs,
                        on_progress=_progress(quiet or as_json), base=base)
    if out_file is not None and result.graph is not None:
        Path(out_file).write_text(result.graph.dumps() + "\n", encoding="utf-8")
    run_record: dict[str, Any] | None = None
    if run_it and result.graph is not None:
        run_record = _run(result.graph, quiet or as_json)
    if as_json:
        document = result.to_json()
        if run_record is not None:
            document["run"] = run_record
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        _print_draft(result, out_file, run_record)
    if result.graph is None or (run_record is not None and run_record["status"] != "succeeded"):
        sys.exit(EXIT_REFUSED)


def _run(graph: Any, quiet: bool) -> dict[str, Any]:
    from nodeloom._run import default_executor
    from nodeloom.core.context import RunConfig

    executor = default_executor()
    missing = [name for name, declared in graph.inputs.items() if declared.port.required]
    if missing:
        return {"status": "not_run", "message": "graph inputs without a default need values: " + ", ".join(missing)}
    if not quiet:
        err.print("[cyan]      run[/] running the draft", markup=True)
    result = executor.run(graph, config=RunConfig())
    record = result.to_json()
    return {"status": result.status.value, "outputs": record.get("outputs"), "errors": result.errors()}


def _print_draft(result: Any, out_file: str | None, run_record: dict[str, Any] | None) -> None:
    if result.graph is None:
        refusal = result.refusal
        err.print(f"[red]refused[/] ({refusal.code}): {refusal.message}", markup=True, highlight=False)
        return
    source = {"model": "the LLM's program", "recipes": "the recipe library"}.get(result.source, "the typed planner")
    out.print(f"[green]valid draft[/] from {source} ({result.provider}), {len(result.graph.nodes)} nodes, "
              f"{result.repair_rounds} repair round(s), {result.seconds:.1f}s", markup=True)
    if result.diff is not None:
        out.print("changes:", markup=False)
        for line in result.diff or ["(none)"]:
            out.print(f"  {line}", markup=False)
    elif result.plan:
        out.print("plan:", markup=False)
        for line in result.plan.splitlines():
            out.print(f"  {line}", markup=False)
    if result.clauses:
        out.print("understood:", markup=False)
        for clause in result.clauses:
            slots = ", ".join(f"{k}={v}" for k, v in clause["slots"].items())
            served = ", ".join(clause["nodes"]) if clause["served"] else "NOT SERVED"
            recipes = ", ".join(clause["recipes"])
            out.print(f"  \"{clause['text']}\" -> {recipes or '-'} [{served}]" + (f" slots: {slots}" if slots else ""),
                      markup=False)
        if result.unserved:
            out.print("not served: " + "; ".join(result.unserved), markup=False)
    from nodeloom.agents.program import decompile

    out.print("program:", markup=False)
    for line in decompile(result.graph).splitlines():
        out.print(f"  {line}", markup=False)
    if result.inputs:
        out.print("graph inputs:", markup=False)
        for info in result.inputs:
            value = "(fill in)" if info.required else json.dumps(info.default, ensure_ascii=False)[:60]
            out.print(f"  {info.name} ({info.type}): {value}", markup=False)
    if out_file is not None:
        out.print(f"written to {out_file}", markup=False)
    if run_record is not None:
        out.print(f"run: {run_record['status']}", markup=False)
        for error in run_record.get("errors") or []:
            out.print(f"  {error.get('node')}: {error.get('message')}", markup=False)
        if run_record.get("message"):
            out.print(f"  {run_record['message']}", markup=False)


@click.group()
def bench() -> None:
    """Benchmarks that print comparable figures."""


@bench.command()
@click.option("--provider", type=PROVIDERS, default="local", show_default=True, help=_PROVIDER_HELP)
@click.option("--base-url", default=None, help=_BASE_URL_HELP)
@click.option("--model", default="", help="Model name for --provider openai.")
@click.option("--split", type=click.Choice(["dev", "validation", "fresh", "heldout", "edits", "all"]), default="dev",
              show_default=True, help="Which cases: bench/drafting/<split>/ (all: every split there is).")
@click.option("--cases", "cases_dir", type=click.Path(file_okay=False), default=None,
              help="A folder of case files instead of a split.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N cases.")
@click.option("--category", default=None,
              help="Only cases of this category (llm, image, video, tool, mixed, multi_step).")
@click.option("--max-repairs", type=click.IntRange(0, 10), default=2, show_default=True,
              help="Repair rounds per draft.")
@click.option("--run-timeout", type=click.FloatRange(min=1), default=120.0, show_default=True,
              help="Seconds a drafted graph may run before it counts as not passing.")
@click.option("--no-run", is_flag=True, help="Score the drafts without running them (no pass rate).")
@click.option("--json", "as_json", is_flag=True, help="Print figures and per-case results as JSON.")
def drafting(provider: str, base_url: str | None, model: str, split: str, cases_dir: str | None, limit: int | None,
             category: str | None, max_repairs: int, run_timeout: float, no_run: bool, as_json: bool) -> None:
    """Draft every benchmark case and print validity, pass rate, node F1, graph F1 (strict, and
    loose: template variable names ignored), clause coverage, mean repair rounds and seconds per
    draft (mean and median), per split, per category and overall.

    Pass rate: the share of drafts that run to completion with the local executor on embedded
    defaults (the embedded LLM; sample values for inputs without a default). Edit cases draft
    with their base graph and score the edited graph. The metrics are defined in
    docs/drafting-metrics.md.
    """
    from nodeloom.agents.benchmark import load_cases, load_split, run_benchmark
    from nodeloom.agents.providers import ProviderChoice

    try:
        cases = load_cases(cases_dir) if cases_dir is not None else load_split(split)
    except NodeloomError as error:
        raise click.ClickException(str(error)) from None
    if category is not None:
        cases = [case for case in cases if case.category == category]
    cases = cases[:limit] if limit is not None else cases
    if not cases:
        raise click.ClickException("no case matches the options given")
    started = time.monotonic()

    def tell(result: Any) -> None:
        if not as_json:
            ran = {True: "ran", False: "failed", None: "-"}[result.score.ran]
            score = result.score
            click.echo(f"{result.case.id:<32} valid={int(score.valid)} {ran:<6} node_f1={score.node_f1:.2f} "
                       f"graph_f1={score.edge_f1:.2f} coverage={result.coverage:.2f} "
                       f"repairs={result.repair_rounds} {result.seconds:.1f}s "
                       f"from={result.source}", err=True)
            if result.run_error:
                click.echo(f"{'':<32} {result.run_error[:200]}", err=True)

    try:
        report = run_benchmark(cases, ProviderChoice(provider, base_url, model), max_repairs=max_repairs,
                               run_timeout=run_timeout, execute=not no_run, on_case=tell)
    except NodeloomError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    console = Console(highlight=False, width=max(out.width, 140))
    for split_name, rows in report.by_split().items():
        table = Table(title=f"drafting benchmark, split {split_name}, provider {provider}, "
                            f"{int(rows['overall']['count'])} cases, {time.monotonic() - started:.0f}s")
        for column in ("category", "cases", "validity", "pass rate", "node F1", "graph F1", "graph F1 loose",
                       "coverage", "repairs", "s/draft", "median s"):
            table.add_column(column, justify="left" if column == "category" else "right", no_wrap=True,
                             min_width=max(len(column), 10 if column == "category" else 0))
        for name, figures in rows.items():
            pass_rate = figures.get("pass_rate")
            table.add_row(
                name, f"{figures['count']:.0f}", f"{figures['validity']:.2f}",
                "-" if pass_rate is None else f"{pass_rate:.2f}", f"{figures['node_f1']:.2f}",
                f"{figures['edge_f1']:.2f}", f"{figures['edge_f1_loose']:.2f}", f"{figures['coverage']:.2f}",
                f"{figures['repair_rounds']:.2f}", f"{figures['seconds_per_draft']:.1f}",
                f"{figures['median_seconds']:.2f}",
            )
        console.print(table)
