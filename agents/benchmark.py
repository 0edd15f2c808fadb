"""The drafting benchmark: draft every case, score it against its reference graph, run it.

The cases live in splits, one folder each under `bench/drafting/`: `dev` (the cases the
drafter is tuned on), `validation` (fresh requests in other domains, written after tuning on
dev began; tuned on like dev), `fresh` (60 requests written at the start of session 7 by a
helper who saw neither the drafter's code and library nor the held-out split; used to check
whether changes made on dev/validation carry over to new requests), `heldout` (requests
written before any tuning, never tuned on) and `edits`. A dev, validation, fresh or held-out
case is a JSON file `{"id", "category", "length", "request", "reference"}`; an edit case is
`{"id", "category": "edit", "base", "instruction", "reference"}`: the runner drafts with
`base=` and scores the edited graph against the reference. For each case the runner drafts a
graph, scores it with `agents.metrics`
(validity, node- and edge-level precision, recall and F1, the loose edge F1 beside the strict
one) and the draft's clause coverage (the share of the request's clauses that some node
serves), and runs the
draft with the local executor on embedded defaults: the embedded LLM, graph inputs at their
defaults, and sample values for the inputs a user must fill — a tiny diffusion pipeline
saved to a temporary folder for a model, a local HTTP server on 127.0.0.1 for a URL (it
answers a small JSON document holding the fields the draft reads of it, `api_document`), a
small picture, sound or 12-second video made by the built-in nodes for a media input. A draft
passes when that run succeeds within the time limit.

The tiny pipeline stands in for a real model, so its diffusion settings are scaled down
too (`stand_in_diffusion`): literal or default sizes and step counts of `image.generate` and
`image.edit` become 64x64 and 2 steps. Left at 512x512 and 30 steps, one picture takes
minutes on 2 CPU cores, and the pass rate would measure diffusion time, not the graph.
"""

from __future__ import annotations

import http.server
import json
import statistics
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeloom.agents.drafter import DEFAULT_MAX_REPAIRS, Draft, Drafter
from nodeloom.agents.metrics import DraftScore, format_valid, score_draft, summarize
from nodeloom.agents.providers import ProviderChoice
from nodeloom.core.artifacts import ArtifactRef
from nodeloom.core.context import RunConfig
from nodeloom.core.errors import NodeloomError
from nodeloom.core.events import RunStatus
from nodeloom.core.graph import Graph
from nodeloom.core.types import List, PortType
from nodeloom.executors import Executor, LocalExecutor
from nodeloom.node_registry import NodeRegistry, default_registry

DEFAULT_RUN_TIMEOUT = 120.0
CATEGORIES = ("llm", "image", "video", "tool", "mixed", "multi_step", "edit")
SPLITS = ("dev", "validation", "fresh", "heldout", "edits")


class BenchmarkError(NodeloomError):
    """The benchmark's cases cannot be read."""


@dataclass(frozen=True)
class BenchCase:
    """One request and the graph a person would build for it."""

    id: str
    category: str
    length: str
    request: str
    reference: Mapping[str, Any]
    split: str = "dev"
    #: the graph an edit case starts from (None for a request drafted from nothing)
    base: Mapping[str, Any] | None = None


@dataclass
class CaseResult:
    """A drafted case: its score, whether the draft ran, and how long drafting took."""

    case: BenchCase
    score: DraftScore
    repair_rounds: int
    seconds: float
    source: str
    run_error: str | None = None
    #: share of the request's clauses some node serves
    coverage: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "split": self.case.split,
            "category": self.case.category,
            "length": self.case.length,
            "valid": self.score.valid,
            "ran": self.score.ran,
            "node_f1": round(self.score.node_f1, 4),
            "edge_f1": round(self.score.edge_f1, 4),
            "edge_f1_loose": round(self.score.edge_f1_loose or 0.0, 4),
            "coverage": round(self.coverage, 4),
            "repair_rounds": self.repair_rounds,
            "seconds": round(self.seconds, 3),
            "source": self.source,
            "run_error": self.run_error,
        }


def drafting_folder() -> Path:
    """`bench/drafting` of the working directory, else of the source checkout beside this package."""
    here = Path.cwd() / "bench" / "drafting"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[1] / "bench" / "drafting"


def default_cases_folder() -> Path:
    """The dev split's folder (`bench/drafting/dev`)."""
    return drafting_folder() / "dev"


def _case(path: Path, split: str) -> BenchCase:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if "base" in data:  # an edit case: the instruction is the request
            return BenchCase(str(data["id"]), str(data.get("category", "edit")), str(data.get("length", "short")),
                             str(data["instruction"]), data["reference"], split, data["base"])
        return BenchCase(str(data["id"]), str(data["category"]), str(data["length"]), str(data["request"]),
                         data["reference"], split)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BenchmarkError(f"{path.name}: not a benchmark case ({error})", details={"file": str(path)}) from None


def load_cases(folder: str | Path | None = None, *, split: str | None = None) -> list[BenchCase]:
    """Every `*.json` case in `folder` (default: `default_cases_folder()`), by file name."""
    root = Path(folder) if folder is not None else default_cases_folder()
    files = sorted(root.glob("*.json")) if root.is_dir() else []
    if not files:
        raise BenchmarkError(f"no benchmark cases (*.json) in {root}", details={"folder": str(root)})
    return [_case(path, split or root.name) for path in files]


def load_split(split: str, root: str | Path | None = None) -> list[BenchCase]:
    """The cases of one split (`dev`, `validation`, `fresh`, `heldout`, `edits`), or of every split (`all`).

    A named split whose folder is missing or empty is a `BenchmarkError` that says so.
    """
    base = Path(root) if root is not None else drafting_folder()
    if split == "all":
        present = [name for name in SPLITS if (base / name).is_dir() and any((base / name).glob("*.json"))]
        if not present:
            raise BenchmarkError(f"no benchmark split in {base}", details={"folder": str(base)})
        return [case for name in present for case in load_split(name, base)]
    if split not in SPLITS:
        raise BenchmarkError(f"unknown split {split!r}; one of {', '.join((*SPLITS, 'all'))}",
                             details={"split": split})
    folder = base / split
    if not folder.is_dir():
        raise BenchmarkError(f"the {split} split is missing: no folder {folder}", details={"folder": str(folder)})
    return load_cases(folder, split=split)


#: what the stand-in API answers, beside the fields a draft reads (`api_document`)
SAMPLE_DOCUMENT: dict[str, Any] = {"title": "Loom Lamp", "text": "A desk lamp with a warm evening glow.", "price": 49,
                                   "items": ["light", "warm"]}


class _SampleServer(http.server.ThreadingHTTPServer):
    """A local HTTP server that answers every request with a small JSON document (`document`)."""

    document: dict[str, Any] = SAMPLE_DOCUMENT


#: the running sample servers by base URL, so that a run can set the document its draft reads
_SERVERS: dict[str, _SampleServer] = {}


class _SampleHandler(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        server = self.server
        document = server.document if isinstance(server, _SampleServer) else SAMPLE_DOCUMENT
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


class SampleValues:
    """Values for the graph inputs a user would fill, made on first use inside one folder."""

    def __init__(self, folder: Path, executor: Executor, url: str) -> None:
        self.folder = folder
        self.executor = executor
        self.url = url
        self._made: dict[str, Any] = {}

    def _once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    def model(self) -> str:
        def make() -> str:
            from nodeloom.node_registry.image.tiny import save_tiny_pipeline

            return str(save_tiny_pipeline(self.folder / "models"))

        return str(self._once("model", make))

    def _media(self, node_type: str, output: str, **inputs: Any) -> ArtifactRef:
        g = Graph("sample")
        g.output("value", g.add(node_type, "make", **inputs)[output])
        result = self.executor.run(g)
        if result.status is not RunStatus.SUCCEEDED:
            raise BenchmarkError(f"cannot make a sample for {node_type}: {result.errors()}")
        value = result.outputs["value"]
        return value if isinstance(value, ArtifactRef) else ArtifactRef.from_json(value)

    def _media_once(self, key: str, make: Callable[[], ArtifactRef]) -> ArtifactRef:
        made = self._once(key, make)
        assert isinstance(made, ArtifactRef)
        return made

    def image(self) -> ArtifactRef:
        return self._media_once("image", lambda: self._media("image.title_card", "image", text="Sample", width=128,
                                                             height=128))

    def audio(self) -> ArtifactRef:
        return self._media_once("audio", lambda: self._media("audio.speak", "audio", text="A sample."))

    def video(self) -> ArtifactRef:
        # 12 s, so that a frame "at the 10 second mark" exists
        return self._media_once("video", lambda: self._media("video.slideshow", "video", images=[self.image()],
                                                             durations=[12.0], width=128, height=128))

    def value(self, name: str, port_type: PortType) -> Any:
        """A value for a graph input named `name` of `port_type`, or None when none can be made."""
        if isinstance(port_type, List):
            item = self.value(name, port_type.item)
            return [item] if item is not None else []
        lowered = name.lower()
        kind = port_type.name
        if kind == "Image":
            return self.image()
        if kind == "Audio":
            return self.audio()
        if kind == "Video":
            return self.video()
        if kind == "Text":
            if "model" in lowered or "pipeline" in lowered:
                return self.model()
            if "url" in lowered or "endpoint" in lowered or "webhook" in lowered:
                return self.url
            return "Loom Lamp, a desk lamp with a warm glow"
        return {"Int": 1, "Float": 1.0, "Bool": False, "Json": {}}.get(kind)

    def inputs_for(self, graph: Graph) -> dict[str, Any]:
        """Values for the graph's inputs: defaults stay, except addresses (to the local server) and models."""
        values: dict[str, Any] = {}
        for name, declared in graph.inputs.items():
            lowered = name.lower()
            addressed = declared.type.name == "Text" and any(w in lowered for w in ("url", "endpoint", "webhook"))
            modelled = declared.type.name == "Text" and "model" in lowered
            if declared.port.required or addressed or modelled:
                value = self.value(name, declared.type)
                if value is not None:
                    values[name] = value
        return values


@contextmanager
def sample_server() -> Iterator[str]:
    """A local JSON server on 127.0.0.1; yields its base URL."""
    server = _SampleServer(("127.0.0.1", 0), _SampleHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/data"
    _SERVERS[url] = server
    try:
        yield url
    finally:
        del _SERVERS[url]
        server.shutdown()
        server.server_close()


def api_document(graph: Graph) -> dict[str, Any]:
    """What the stand-in API answers for one draft: `SAMPLE_DOCUMENT` and every field the draft reads of an
    API's answer (a `json.extract` fed by an `http.request`'s JSON). The user's API has the fields the request
    names ("an 'attendees' array", "the 'headline' field"); a stand-in with fixed fields would fail every draft
    that reads one, whether or not the draft is right. A field that a `control.map` goes over is a list of two
    objects (with the field each item's `json.extract` reads); one a math node takes is a number; others a text.
    Field names are not scored (they are literals): the pass rate says whether the pipeline runs."""
    document = dict(SAMPLE_DOCUMENT)
    nodes = graph.nodes
    for node_id, node in nodes.items():
        data = node.inputs.get("data")
        path = node.inputs.get("path")
        if node.type != "json.extract" or not isinstance(path, str) or not path or path[0].isdigit():
            continue
        source = getattr(data, "node", None)
        if not isinstance(source, str) or source not in nodes or nodes[source].type != "http.request":
            continue
        readers = [(other, port) for other in nodes.values() for port, link in other.links() if link.node == node_id]
        value: Any = "Sample text from the API."
        for reader, port in readers:
            if reader.type == "control.map" and port == "items":
                fixed = reader.inputs.get("inputs")
                key = fixed.get("path") if isinstance(fixed, dict) else None
                summed = any(other.type.startswith("math.") and link.node == reader.id
                             for other in nodes.values() for _, link in other.links())
                first, second = (2.5, 4.0) if summed else ("first item", "second item")
                value = [{key: first} if isinstance(key, str) else first,
                         {key: second} if isinstance(key, str) else second]
            elif reader.type.startswith("math."):
                value = 3.5
        document[path.split(".")[0]] = value
    return document


#: what `stand_in_diffusion` sets on diffusion nodes, where the draft gives a literal or nothing
STAND_IN_DIFFUSION = {"image.generate": {"width": 64, "height": 64, "steps": 2}, "image.edit": {"steps": 2}}


def stand_in_diffusion(graph: Graph) -> Graph:
    """The graph with the diffusion settings of `STAND_IN_DIFFUSION` (links are kept as they are), also for a
    diffusion node a `control.map` runs per item (its per-item `inputs`)."""
    document = graph.to_json()
    for spec in document.get("nodes", {}).values():
        inputs = spec.setdefault("inputs", {})
        settings = STAND_IN_DIFFUSION.get(spec.get("type", ""))
        if spec.get("type") == "control.map" and isinstance(inputs.get("node"), str):
            settings = STAND_IN_DIFFUSION.get(inputs["node"])
            if settings is not None:
                inputs = inputs.setdefault("inputs", {})
        if settings is None or not isinstance(inputs, dict) or {"node", "input"} & set(inputs):
            continue
        for name, value in settings.items():
            if not isinstance(inputs.get(name), dict):  # a link ({"node"...} / {"input"...}) stays
                inputs[name] = value
    return Graph.from_json(document)


def run_draft(graph: Graph, executor: Executor, samples: SampleValues, folder: Path,
              timeout: float) -> tuple[bool, str | None]:
    """Run a drafted graph on embedded defaults; (succeeded, the first error message)."""
    config = RunConfig(allow_private_network=True, out_dir=folder / "files", settings={"llm.provider": "local"})
    graph = stand_in_diffusion(graph)
    server = _SERVERS.get(samples.url)
    if server is not None:
        server.document = api_document(graph)
    try:
        values = samples.inputs_for(graph)
        handle = executor.submit(graph, values, config=config, use_cache=False)
    except NodeloomError as error:
        return False, str(error)
    try:
        result = handle.result(timeout)
    except TimeoutError:
        handle.cancel()
        return False, f"did not finish within {timeout:.0f} s"
    if result.status is RunStatus.SUCCEEDED:
        return True, None
    errors = result.errors()
    return False, str(errors[0].get("message")) if errors else result.status.value


@dataclass
class BenchmarkReport:
    """Every case's result, and the figures per category and overall."""

    provider: str
    results: list[CaseResult] = field(default_factory=list)

    def figures(self, results: Sequence[CaseResult]) -> dict[str, float]:
        """validity, pass rate, mean node and edge F1 (and P/R), loose edge F1, clause coverage, mean repair
        rounds, seconds per draft (mean and median)."""
        summary = summarize([r.score for r in results])
        if results:
            count = len(results)
            summary["edge_f1_loose"] = sum(r.score.edge_f1_loose or 0.0 for r in results) / count
            summary["coverage"] = sum(r.coverage for r in results) / count
            summary["repair_rounds"] = sum(r.repair_rounds for r in results) / count
            summary["seconds_per_draft"] = sum(r.seconds for r in results) / count
            summary["median_seconds"] = statistics.median(r.seconds for r in results)
        return summary

    def by_category(self, results: Sequence[CaseResult] | None = None) -> dict[str, dict[str, float]]:
        chosen = self.results if results is None else list(results)
        names = [c for c in CATEGORIES if any(r.case.category == c for r in chosen)]
        names += sorted({r.case.category for r in chosen} - set(names))
        table = {name: self.figures([r for r in chosen if r.case.category == name]) for name in names}
        table["overall"] = self.figures(chosen)
        return table

    def by_split(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per split (in `SPLITS` order): the figures per category and overall."""
        names = [s for s in SPLITS if any(r.case.split == s for r in self.results)]
        names += sorted({r.case.split for r in self.results} - set(names))
        return {name: self.by_category([r for r in self.results if r.case.split == name]) for name in names}

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "figures": self.by_category(),
            "splits": self.by_split(),
            "cases": [result.to_json() for result in self.results],
        }


def run_benchmark(
    cases: Sequence[BenchCase],
    provider: ProviderChoice,
    *,
    registry: NodeRegistry | None = None,
    max_repairs: int = DEFAULT_MAX_REPAIRS,
    run_timeout: float = DEFAULT_RUN_TIMEOUT,
    execute: bool = True,
    on_case: Callable[[CaseResult], None] | None = None,
) -> BenchmarkReport:
    """Draft, score and (unless `execute` is false) run every case; the report holds the figures."""
    catalog = registry if registry is not None else default_registry()
    drafter = Drafter(catalog, provider, max_repairs=max_repairs)
    report = BenchmarkReport(provider.name)
    with tempfile.TemporaryDirectory(prefix="nodeloom-bench-") as scratch, sample_server() as url, \
            LocalExecutor(catalog, artifacts=Path(scratch) / "artifacts") as executor:
        samples = SampleValues(Path(scratch), executor, url)
        for case in cases:
            result = _one_case(case, drafter, executor, samples, Path(scratch), run_timeout, execute)
            report.results.append(result)
            if on_case is not None:
                on_case(result)
    return report


def _one_case(case: BenchCase, drafter: Drafter, executor: Executor, samples: SampleValues, folder: Path,
              run_timeout: float, execute: bool) -> CaseResult:
    drafted: Draft = drafter.run(case.request, base=case.base)
    ran: bool | None = None
    error: str | None = None
    if drafted.graph is not None and execute:
        ran, error = run_draft(drafted.graph, executor, samples, folder / case.id, run_timeout)
    elif drafted.graph is None:
        ran = False if execute else None
        error = drafted.refusal.message if drafted.refusal is not None else "no graph"
    valid = format_valid(drafted.graph, drafter.registry)  # checked again, not taken on the drafter's word
    score = score_draft(drafted.graph, case.reference, valid=valid, ran=ran)
    return CaseResult(case, score, drafted.repair_rounds, drafted.seconds, drafted.source, error, drafted.coverage)
