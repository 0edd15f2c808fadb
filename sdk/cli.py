"""The `nodeloom` command line: run, validate, nodes."""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text as RichText

from nodeloom._comfy_format import comfy_file_issue
from nodeloom._inputs import parse_assignments
from nodeloom._outputs import write_outputs
from nodeloom._progress import RunDisplay
from nodeloom._run import load
from nodeloom.core.cache import ResultCache
from nodeloom.core.catalog import NodeCatalog
from nodeloom.core.context import RunConfig
from nodeloom.core.document import parse_json_text
from nodeloom.core.errors import GraphFileError, GraphValidationError, NodeloomError, UsageError
from nodeloom.core.events import RunStatus
from nodeloom.core.graph import Graph, read_graph_document
from nodeloom.core.issues import ValidationIssue
from nodeloom.core.plan import prepare_run
from nodeloom.core.preflight import check_before_run, out_dir_problem, preflight
from nodeloom.core.preview import preview_run
from nodeloom.core.validate import validate_graph

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_RUN_FAILED = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\b
Exit codes:
  0  success
  1  the graph or the input values are invalid
  2  bad command-line usage, or an unreadable file
  3  the run failed or was cancelled
  130 interrupted (Ctrl-C cancels the run)"""

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _print_issues(issues: list[ValidationIssue], source: str) -> None:
    err.print(f"[red]✗[/] {source}: {len(issues)} problem{'s' if len(issues) != 1 else ''}")
    for issue in issues:
        where = ".".join(part for part in (issue.node, issue.port) if part) or "graph"
        # the message quotes user text ("Json[schema]"): escaped, so rich does not read it as markup
        err.print(f"  [bold]{escape(where)}[/]: {escape(issue.message)} [dim]({issue.code})[/]", markup=True)
        if issue.expected or issue.received:
            err.print(f"      expected {issue.expected or '?'}, received {issue.received or '?'}", markup=False)
        if issue.hint:
            err.print(f"      hint: {issue.hint}", markup=False)


#: commands that live beside the part they drive, imported only when invoked so that
#: `nodeloom run` does not pay for FastAPI or LangGraph: name -> "module:attribute"
LAZY_COMMANDS = {
    "serve": "nodeloom.api.cli:serve",
    "keys": "nodeloom.api.cli:keys",
    "draft": "nodeloom.agents.cli:draft",
    "bench": "nodeloom.agents.cli:bench",
    "import-comfy": "nodeloom._comfy_cli:import_comfy",
    "export-comfy": "nodeloom._comfy_cli:export_comfy",
}


class _Cli(click.Group):
    """Turns every nodeloom error into a readable message and an exit code, never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = target.partition(":")
        try:
            command = getattr(importlib.import_module(module_name), attribute)
        except ImportError as error:  # an optional extra is not installed: say so when it is used
            return _unavailable(cmd_name, error)
        return command if isinstance(command, click.Command) else None

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except GraphValidationError as error:
            _print_issues(error.issues, "invalid")
            sys.exit(EXIT_INVALID)
        except NodeloomError as error:
            err.print(f"[red]error:[/] {error.message}", markup=True)
            usage = error.code in ("usage_error", "invalid_input_value", "graph_file_unreadable")
            sys.exit(EXIT_USAGE if usage else EXIT_INVALID)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except ImportError as error:  # a command of an optional extra that is not installed
            if debug:
                raise
            err.print(f"[red]error:[/] this command needs {error.name or error}, which is not installed "
                      "(pip install 'nodeloom\\[dev]' installs every extra)", markup=True)
            sys.exit(EXIT_USAGE)
        except Exception as error:
            if debug:
                raise
            err.print(f"[red]internal error:[/] {type(error).__name__}: {error}", markup=True)
            err.print("run again with --debug for the traceback, and report it", markup=False)
            sys.exit(EXIT_RUN_FAILED)


def _unavailable(name: str, error: ImportError) -> click.Command:
    missing = error.name or str(error)

    def explain() -> None:
        raise click.ClickException(f"nodeloom {name} needs {missing}, which is not installed "
                                   "(pip install 'nodeloom[dev]' installs every extra)")

    return click.Command(name, callback=explain, short_help=f"(not installed: needs {missing})",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.version_option(package_name="nodeloom")
def main(debug: bool) -> None:
    """nodeloom: run graphs of typed AI nodes (LLMs, image models, tools).

    \b
    Examples:
      nodeloom nodes                      list the node types
      nodeloom validate graph.json        check a graph, print every problem
      nodeloom run graph.json --set topic=tea --out out/
    """


@main.command()
@click.argument("graph_file", metavar="[GRAPH.json]", type=click.Path(dir_okay=False), required=False)
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Set a graph input (repeatable). VALUE is parsed by the input's type: numbers, "
                   "true/false, JSON for Json/List inputs, a file path for Image/Audio/Video/File. "
                   "@path reads a text value from a file.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the outputs and run.json [default: ./nodeloom-out/<date-time>]; created, "
                   "and checked writable before any node runs.")
@click.option("--no-cache", is_flag=True, help="Run every node, ignoring cached results.")
@click.option("--allow-private-network", is_flag=True,
              help="Let network nodes reach private, loopback and link-local addresses.")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON instead of a summary.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@click.option("--plan", "plan_only", is_flag=True,
              help="Run nothing: show which nodes would run and which would come from the cache, and their queues.")
@click.option("--retry", "retry_of", metavar="RUN_ID", default=None,
              help="Instead of GRAPH.json: retry the API server's run RUN_ID (the server at $NODELOOM_API_URL, "
                   "key $NODELOOM_API_KEY), then download the new run's outputs into --out.")
@click.option("--graph-version", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --retry: run version N of the run's saved graph (a fix saved since) instead of its own.")
def run(graph_file: str | None, assignments: tuple[str, ...], out_dir: str | None, no_cache: bool,
        allow_private_network: bool, as_json: bool, quiet: bool, plan_only: bool, retry_of: str | None,
        graph_version: int | None) -> None:
    """Run GRAPH.json and write its outputs to a folder.

    Each graph output is written as NAME.txt (text), NAME.json (JSON) or a media file
    (NAME.png, NAME.mp4, ...); run.json records the status, per-node timings and errors.
    With --plan, nothing runs: the preview lists each node as `cached` or `run` (and why).

    \b
    With --retry RUN_ID, a run of the API server (nodeloom serve) is retried there:
    a new run of the same graph with the same inputs, in which only the failed, skipped
    and changed nodes run; the others take the earlier run's results from the cache.
      NODELOOM_API_URL=http://127.0.0.1:8000 NODELOOM_API_KEY=nl_... nodeloom run --retry RUN_ID
    """
    if retry_of is not None:
        if graph_file is not None or assignments or no_cache or plan_only or allow_private_network:
            raise UsageError("--retry reruns the run's own graph and inputs: give no GRAPH.json, --set, "
                             "--no-cache, --plan or --allow-private-network with it")
        _retry(retry_of, graph_version, _out_folder(out_dir), as_json, quiet)
        return
    if graph_file is None:
        raise UsageError("give GRAPH.json to run (or --retry RUN_ID to retry a run of the API server)")
    if graph_version is not None:
        raise UsageError("--graph-version goes with --retry")
    from nodeloom._run import default_executor

    graph = load(graph_file)
    executor = default_executor()
    values = parse_assignments(graph, list(assignments), executor.artifacts)
    if plan_only:
        _print_preview(graph, values, None if no_cache else executor.cache, executor.registry, as_json)
        return
    target = _out_folder(out_dir)  # before any node runs, not after the whole graph did
    config = RunConfig(allow_private_network=allow_private_network, out_dir=target)
    check_before_run(graph, executor.registry, values, config)  # programs, folders, destinations, map targets
    display = RunDisplay(err, {node_id: n.type for node_id, n in graph.nodes.items()},
                         live=False if quiet else None)
    callback = None if quiet else display
    started = time.monotonic()
    with display:
        handle = executor.submit(graph, values, config=config, on_event=callback, use_cache=not no_cache)
        try:
            result = handle.result()
        except KeyboardInterrupt:
            handle.cancel()
            err.print("[yellow]interrupted: run cancelled[/]", markup=True)
            sys.exit(EXIT_INTERRUPTED)
    files = write_outputs(result, target, executor.artifacts)
    if as_json:
        record = result.to_json()
        record["files"] = {name: str(target / f) if isinstance(f, str) else [str(target / x) for x in f]
                           for name, f in files.items()}
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        _print_summary(result.status.value, result.run_id, time.monotonic() - started, target, files, result.errors())
    if result.status is not RunStatus.SUCCEEDED:
        sys.exit(EXIT_RUN_FAILED)


def _print_preview(graph: Graph, values: dict[str, Any], cache: ResultCache | None, catalog: NodeCatalog,
                   as_json: bool) -> None:
    plan, resolved = prepare_run(graph, catalog, values)
    previews = preview_run(plan, resolved, cache)
    if as_json:
        click.echo(json.dumps([preview.to_json() for preview in previews], indent=2))
        return
    _print_plan(previews)
    running = sum(1 for preview in previews if preview.action == "run")
    out.print(f"{running} of {len(previews)} nodes would run, {len(previews) - running} come from the cache; "
              "nothing was run", markup=False)


def _print_plan(previews: Sequence[Any]) -> None:
    """A table of node previews (`NodePreview`, or the API's `NodePreviewInfo`): each node cached or run, and why."""
    table = Table(box=None, pad_edge=False)
    for column in ("node", "type", "will", "why", "queue"):
        table.add_column(column)
    for preview in previews:
        will = "[green]cached[/]" if preview.action == "cached" else "[yellow]run[/]"
        table.add_row(preview.node, preview.type, will, (preview.reason or "").replace("_", " "), preview.queue)
    out.print(table)


def _retry(run_id: str, version: int | None, target: Path, as_json: bool, quiet: bool) -> None:
    """`run --retry`: retry the API server's run, wait for the new run, download its outputs into `target`."""
    import httpx

    from nodeloom.api.client import Client
    from nodeloom.api.schemas import RunState

    started = time.monotonic()
    with Client() as api:
        try:
            retried = api.retry(run_id, version=version)
            if not quiet and not as_json:
                _print_plan(retried.nodes)
                out.print(f"retrying run {run_id} as run {retried.run.id}: {len(retried.rerun)} of "
                          f"{len(retried.nodes)} nodes run, {len(retried.reused)} take the earlier results",
                          markup=False)
            try:
                finished = api.wait(retried.run.id)
            except KeyboardInterrupt:
                err.print(f"stopped waiting: run {retried.run.id} goes on on the server", markup=False)
                sys.exit(EXIT_INTERRUPTED)
            files = api.download_outputs(finished.id, target)
            (target / "run.json").write_text(finished.model_dump_json(indent=2))
        except httpx.TransportError as error:
            url = error.request.url
            raise UsageError(f"cannot reach the nodeloom API at {url.scheme}://{url.netloc.decode()} "
                             f"(set NODELOOM_API_URL): {error}") from None
    if as_json:
        record = finished.model_dump(mode="json")
        record["retry_of"] = run_id
        record["files"] = {name: str(path) for name, path in files.items()}
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        _print_summary(finished.status.value, finished.id, time.monotonic() - started, target,
                       {name: path.name for name, path in files.items()}, finished.errors)
    if finished.status is not RunState.SUCCEEDED:
        sys.exit(EXIT_RUN_FAILED)


def _out_folder(out_dir: str | None) -> Path:
    """The --out folder (default ./nodeloom-out/<date-time>), created and checked writable."""
    target = Path(out_dir) if out_dir else Path("nodeloom-out") / time.strftime("%Y%m%d-%H%M%S")
    _check_writable(target)
    return target


def _check_writable(folder: Path) -> None:
    """Create `folder` if needed and prove a file can be written there; else a usage error (exit 2)."""
    problem = out_dir_problem(folder)
    if problem is None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            problem = f"cannot write to the output folder {folder}: {error.strerror or error}"
    if problem is not None:
        raise UsageError(problem)


def _print_summary(status: str, run_id: str, seconds: float, target: Path,
                   files: dict[str, Any], errors: list[dict[str, Any]]) -> None:
    colour = "green" if status == RunStatus.SUCCEEDED.value else "red"
    out.print(f"[{colour}]{status}[/] run {run_id} in {seconds:.2f}s", markup=True)
    for name, written in files.items():
        names = written if isinstance(written, list) else [written]
        out.print(f"  {name}: " + ", ".join(str(target / n) for n in names), markup=False)
    out.print(f"  record: {target / 'run.json'}", markup=False)
    for error in errors:
        out.print(f"  [red]{error.get('node', 'run')}[/]: {error.get('message')} ({error.get('code')})", markup=True)


@main.command()
@click.argument("run_id", metavar="RUN")
@click.argument("node", metavar="NODE")
@click.option("--reject", "rejection", metavar="REASON", default=None,
              help="Reject the value instead, for REASON: the node fails with it and the run ends.")
@click.option("--value", "edited", metavar="JSON", default=None,
              help="Approve this edited value instead of the one under review (JSON; text that is not JSON is "
                   "taken as a text).")
@click.option("--reason", default=None, help="A note kept with an approval.")
@click.option("--wait", "wait_after", is_flag=True,
              help="Wait until the run has finished (or waits again) and exit as `nodeloom run` does.")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
def approve(run_id: str, node: str, rejection: str | None, edited: str | None, reason: str | None,
            wait_after: bool, as_json: bool) -> None:
    """Decide at node NODE of run RUN of the API server, which waits at a control.approve node:
    approve its value (as it is, or edited with --value), or reject it (--reject REASON).
    The run goes on on the server; nothing before the approval runs again.

    \b
    The server is $NODELOOM_API_URL, the key $NODELOOM_API_KEY (scope run):
      NODELOOM_API_URL=http://127.0.0.1:8000 NODELOOM_API_KEY=nl_... nodeloom approve RUN NODE
    """
    import httpx

    from nodeloom.api.client import Client
    from nodeloom.api.schemas import RunState

    if rejection is not None and (edited is not None or reason is not None):
        raise UsageError("--reject REASON goes alone: give no --value or --reason with it")
    with Client() as api:
        try:
            if rejection is not None:
                answer = api.reject(run_id, node, rejection)
            elif edited is not None:
                answer = api.approve(run_id, node, value=_json_or_text(edited), reason=reason)
            else:
                answer = api.approve(run_id, node, reason=reason)
            if wait_after:
                try:
                    answer = api.wait(run_id)
                except KeyboardInterrupt:
                    err.print(f"stopped waiting: run {run_id} goes on on the server", markup=False)
                    sys.exit(EXIT_INTERRUPTED)
        except httpx.TransportError as error:
            url = error.request.url
            raise UsageError(f"cannot reach the nodeloom API at {url.scheme}://{url.netloc.decode()} "
                             f"(set NODELOOM_API_URL): {error}") from None
    if as_json:
        click.echo(answer.model_dump_json(indent=2))
    else:
        verb = "rejected" if rejection is not None else "approved" + (" an edited value at" if edited else "")
        out.print(f"{verb} node {node} of run {run_id}; the run is {answer.status.value}", markup=False)
        for problem in answer.errors if answer.status is RunState.FAILED else []:
            err.print(f"  {problem.get('node')}: {problem.get('message')}", markup=False)
    if wait_after and answer.status in (RunState.FAILED, RunState.CANCELLED):
        sys.exit(EXIT_RUN_FAILED)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@main.command()
@click.argument("graph_file", metavar="GRAPH.json", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the problems as a JSON list.")
@click.option("--allow-private-network", is_flag=True,
              help="Check network destinations as `nodeloom run --allow-private-network` would.")
def validate(graph_file: str, as_json: bool, allow_private_network: bool) -> None:
    """Check GRAPH.json against the installed nodes and print every problem.

    Besides the graph itself, checks what a run with the inputs' defaults needs (preflight):
    programs installed (espeak-ng, ffmpeg), model folders there, network destinations allowed,
    control.map targets known. Exits 0 when the graph is valid, 1 when it is not.
    """
    from nodeloom.node_registry import default_registry

    path = Path(graph_file)
    try:
        text = path.read_bytes()
    except OSError as error:
        raise GraphFileError(f"cannot read {path}: {error.strerror}") from None
    comfy_file = comfy_file_issue(text, str(path))
    registry = default_registry()
    issues = [comfy_file] if comfy_file else validate_graph(text, registry)
    if not comfy_file:
        data, unreadable = parse_json_text(text)
        graph = None if unreadable else read_graph_document(data)[0]
        if graph is not None:
            issues += preflight(graph, registry, config=RunConfig(allow_private_network=allow_private_network))
    if as_json:
        click.echo(json.dumps([issue.to_dict() for issue in issues], indent=2))
    elif issues:
        _print_issues(issues, str(path))
    elif graph is not None:
        out.print(f"[green]✓[/] {path}: valid ({len(graph.nodes)} nodes, "
                  f"inputs: {', '.join(graph.inputs) or 'none'}; outputs: {', '.join(graph.outputs)})",
                  markup=True)
    if issues:
        sys.exit(EXIT_INVALID)


@main.command()
@click.argument("words", metavar="[QUERY]...", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the catalog (JSON Schemas included) as JSON.")
@click.option("--category", default=None, help="Only nodes of this category (e.g. text, math).")
def nodes(words: tuple[str, ...], as_json: bool, category: str | None) -> None:
    """List node types, optionally those matching QUERY words (nodeloom nodes condition branch).

    With --json, prints the catalog: one entry per node with a JSON Schema for its inputs
    and one for its outputs. Exits 1 when no node type matches, like grep, naming the
    nearest type names.
    """
    from nodeloom.node_registry import default_registry

    registry = default_registry()
    query = " ".join(words)
    specs = registry.search(query, limit=50) if query else [definition.spec for definition in registry]
    if category:
        specs = [spec for spec in specs if spec.category == category]
    if not specs:
        _no_match(query, category, registry.suggest(query) if query else [])
    if as_json:
        catalog = registry.catalog()
        wanted = {spec.type for spec in specs}
        catalog["nodes"] = [entry for entry in catalog["nodes"] if entry["type"] in wanted]
        click.echo(json.dumps(catalog, indent=2, ensure_ascii=False))
        return
    table = Table(show_lines=False, header_style="bold")
    table.add_column("type")
    table.add_column("inputs")
    table.add_column("outputs")
    table.add_column("runs on")
    table.add_column("description")
    for spec in specs:
        inputs = ", ".join(
            f"{p.name}: {p.type.name}{'' if p.required else '?'}" for p in spec.inputs
        ) + (f", **: {spec.variadic.name}" if spec.variadic is not None else "")
        outputs = ", ".join(f"{p.name}: {p.type.name}" for p in spec.outputs)
        table.add_row(*(RichText(cell) for cell in (spec.type, inputs, outputs, spec.resources.kind,
                                                    spec.description)))
    out.print(table)
    for problem in registry.plugin_problems:
        err.print(f"[yellow]warning:[/] node pack {problem.entry_point} ({problem.target}) "
                  f"was not loaded: {problem.message}", markup=True)


def _no_match(query: str, category: str | None, nearest: list[str]) -> None:
    scope = f" in category {category!r}" if category else ""
    err.print(f"no node types match {query!r}{scope}" if query else f"no node types{scope}", markup=False)
    if nearest:
        err.print(f"  did you mean: {', '.join(nearest)}?", markup=False)
    sys.exit(EXIT_INVALID)


@main.command()
@click.option("--queues", "-Q", default="cpu,io", show_default=True,
              help="Comma-separated queues to take nodes from; short names mean nodeloom.<name> "
                   "(cpu, io, gpu), names with a dot are used as they are.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=2, show_default=True,
              help="Nodes run at once. Use 1 for a GPU worker.")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork", show_default=True,
              help="Celery pool; prefork isolates nodes in child processes and enforces timeouts.")
@click.option("--broker", envvar="NODELOOM_BROKER_URL", default="redis://127.0.0.1:6379/0", show_default=True,
              help="Broker URL [env NODELOOM_BROKER_URL].")
@click.option("--store", envvar="NODELOOM_STORE_URL", default=None,
              help="Redis URL of the run store [env NODELOOM_STORE_URL; default: the broker].")
@click.option("--artifacts", envvar="NODELOOM_ARTIFACTS", default=None,
              help="Artifact store shared with the submitting side: a folder, or an fsspec URL such as "
                   "s3://bucket/prefix [env NODELOOM_ARTIFACTS].")
@click.option("--node-module", "node_modules", multiple=True, metavar="MODULE",
              help="Also register the nodes of this Python module (repeatable).")
@click.option("--name", default=None, help="Worker name (default: celery's, name@host).")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(queues: str, concurrency: int, pool: str, broker: str, store: str | None, artifacts: str | None,
           node_modules: tuple[str, ...], name: str | None, loglevel: str) -> None:
    """Start a Celery worker that runs graph nodes for CeleryExecutor.

    \b
    One command per worker; GPU workers separate:
      nodeloom worker --queues cpu,io --concurrency 2
      nodeloom worker --queues gpu --concurrency 1
    All workers of a fleet and the submitting side share the broker, the store and the
    artifact folder. Set NODELOOM_VISIBILITY_TIMEOUT above your longest node.
    """
    import importlib.util
    import os

    if importlib.util.find_spec("celery") is None:
        raise UsageError("nodeloom worker needs Celery: pip install 'nodeloom[celery]'")
    names = [q.strip() for q in queues.split(",") if q.strip()]
    if not names:
        raise UsageError("--queues names no queue")
    full = ",".join(q if "." in q else f"nodeloom.{q}" for q in names)
    env = dict(os.environ, NODELOOM_BROKER_URL=broker)
    if store:
        env["NODELOOM_STORE_URL"] = store
    if artifacts:
        env["NODELOOM_ARTIFACTS"] = artifacts if "://" in artifacts else str(Path(artifacts).resolve())
    if node_modules:
        env["NODELOOM_NODE_MODULES"] = ",".join(node_modules)
    command = [sys.executable, "-m", "celery", "-A", "nodeloom.executors.celery.app", "worker", "-Q", full,
               "-c", str(concurrency), "-P", pool, "--loglevel", loglevel, "--without-gossip", "--without-mingle"]
    if name:
        command += ["-n", name]
    err.print(f"worker for {full} ({pool}, {concurrency} at once) on {broker}", markup=False)
    os.execvpe(sys.executable, command, env)  # the worker replaces this process: signals reach it directly


@main.group()
def cache() -> None:
    """The result cache local runs share ($NODELOOM_HOME/cache.sqlite)."""


def _open_cache() -> Any:
    from nodeloom.core.artifacts import LocalArtifactStore, default_artifact_root
    from nodeloom.core.disk_cache import DiskResultCache

    return DiskResultCache(LocalArtifactStore(default_artifact_root()))


@cache.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def cache_info(as_json: bool) -> None:
    """Print the cache's size, entries, and hits and misses of every run so far."""
    store = _open_cache()
    try:
        info = store.info()
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    rate = "n/a" if info["hit_rate"] is None else f"{info['hit_rate']:.1%}"
    out.print(f"{info['path']}\n  entries: {info['entries']}\n"
              f"  size: {info['bytes'] / 2**20:.2f} MiB of {info['max_bytes'] / 2**20:.0f} MiB\n"
              f"  hits: {info['hits']}  misses: {info['misses']}  hit rate: {rate}", markup=False)


@cache.command("clear")
def cache_clear() -> None:
    """Delete every cached result (spilled artifacts stay in the artifact store)."""
    store = _open_cache()
    try:
        entries = store.info()["entries"]
        store.clear()
    finally:
        store.close()
    out.print(f"cleared {entries} cached results from {store.path}", markup=False)


run.epilog = EXIT_CODES_HELP
validate.epilog = EXIT_CODES_HELP


if __name__ == "__main__":
    main()
