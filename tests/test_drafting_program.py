"""The restricted program form: compiling code to graphs, rejecting everything else, and back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodeloom.agents.program import ProgramError, compile_program, decompile
from nodeloom.core.graph import Graph, InputRef, Link
from nodeloom.core.validate import validate_graph
from nodeloom.node_registry import NodeRegistry, builtin_registry

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_GRAPHS = sorted(ROOT.glob("examples/*/graph.json"))
CASE_FILES = sorted(ROOT.glob("bench/drafting/dev/*.json"))

POSTER = '''"Turns a product name into a poster."
product = input("product", "Text", default="Loom Lamp", description="the product")
brief = text.template(template="Write a title for {{ p }}", p=product)
story = llm.structured(prompt=brief, schema={"type": "object", "properties": {"title": {"type": "string"}}})
title = json.extract(data=story["data"], path="title")
card = image.title_card(text=title, width=640, height=360)
output("poster", card)
'''


@pytest.fixture(scope="module")
def catalog() -> NodeRegistry:
    return builtin_registry()


def problems(source: str, catalog: NodeRegistry) -> list[dict[str, Any]]:
    with pytest.raises(ProgramError) as caught:
        compile_program(source, catalog)
    return [issue.to_dict() for issue in caught.value.issues]


# -- what compiles -----------------------------------------------------------------


def test_program_compiles_to_the_graph_it_describes(catalog: NodeRegistry) -> None:
    graph = compile_program(POSTER, catalog, name="poster")
    assert graph.to_json() == {
        "format_version": 1,
        "name": "poster",
        "description": "Turns a product name into a poster.",
        "inputs": {"product": {"type": "Text", "default": "Loom Lamp", "description": "the product"}},
        "nodes": {
            "brief": {
                "type": "text.template",
                "inputs": {"template": "Write a title for {{ p }}", "p": {"input": "product"}},
            },
            "story": {
                "type": "llm.structured",
                "inputs": {
                    "prompt": {"node": "brief", "output": "text"},
                    "schema": {"type": "object", "properties": {"title": {"type": "string"}}},
                },
            },
            "title": {
                "type": "json.extract",
                "inputs": {"data": {"node": "story", "output": "data"}, "path": "title"},
            },
            "card": {
                "type": "image.title_card",
                "inputs": {"text": {"node": "title", "output": "value"}, "width": 640, "height": 360},
            },
        },
        "outputs": {"poster": {"node": "card", "output": "image"}},
    }
    assert validate_graph(graph, catalog) == []


def test_a_name_links_to_the_only_output_and_a_subscript_to_a_named_one(catalog: NodeRegistry) -> None:
    source = (
        'page = http.request(url="https://example.com")\n'
        'body = text.template(template="{{ t }}", t=page["text"], code=page["status"])\n'
        "output(\"body\", body)\n"
    )
    graph = compile_program(source, catalog)
    assert graph.nodes["body"].inputs["t"] == Link("page", "text")
    assert graph.nodes["body"].inputs["code"] == Link("page", "status")
    assert graph.outputs["body"] == Link("body", "text")


def test_graph_inputs_keep_type_default_description_and_constraints(catalog: NodeRegistry) -> None:
    source = (
        'n = input("scenes", "Int", default=3, description="how many", min=1, max=8)\n'
        'tone = input("tone", type="Text", default="warm", choices=["warm", "bold"])\n'
        'sku = input("sku", "Text", pattern="[A-Z]{3}")\n'
        'brief = input("brief", {"type": "Json", "schema": {"type": "object"}}, default={"a": [1, -2.5, None]})\n'
        'tags = input("tags", "List[Text]", default=[])\n'
        't = text.template(template="{{ n }} {{ tone }} {{ s }}", n=n, tone=tone, s=sku, b=brief, tags=tags)\n'
        'output("t", t)\n'
    )
    graph = compile_program(source, catalog)
    assert graph.to_json()["inputs"] == {
        "scenes": {"type": "Int", "default": 3, "description": "how many", "min": 1, "max": 8},
        "tone": {"type": "Text", "default": "warm", "choices": ["warm", "bold"]},
        "sku": {"type": "Text", "pattern": "[A-Z]{3}"},
        "brief": {"type": "Json", "schema": {"type": "object"}, "default": {"a": [1, -2.5, None]}},
        "tags": {"type": "List[Text]", "default": []},
    }
    assert graph.nodes["t"].inputs["n"] == InputRef("scenes")
    assert graph.nodes["t"].inputs["s"] == InputRef("sku")


def test_configure_sets_node_options(catalog: NodeRegistry) -> None:
    source = (
        'a = text.template(template="x")\n'
        'configure(a, label="First", timeout=30, retry={"max_attempts": 3}, queue="nodeloom.cpu")\n'
        'output("a", a)\n'
    )
    node = compile_program(source, catalog).nodes["a"]
    assert (node.label, node.timeout, dict(node.retry or {}), node.queue) == ("First", 30.0, {"max_attempts": 3},
                                                                              "nodeloom.cpu")


def test_a_literal_object_shaped_like_a_link_stays_a_literal(catalog: NodeRegistry) -> None:
    source = 'a = json.extract(data={"node": "x", "output": "y"}, path="node")\noutput("a", a)\n'
    graph = compile_program(source, catalog)
    assert graph.nodes["a"].inputs["data"] == {"node": "x", "output": "y"}
    assert graph.to_json()["nodes"]["a"]["inputs"]["data"] == {"literal": {"node": "x", "output": "y"}}


def test_compiling_never_executes_the_code(tmp_path: Path, catalog: NodeRegistry) -> None:
    marker = tmp_path / "ran"
    source = f'import os\nx = os.system("touch {marker}")\ny = text.template(template=open("{marker}", "w"))\n'
    found = problems(source, catalog)
    assert {issue["code"] for issue in found} == {"program_form", "unknown_node_type"}
    assert not marker.exists()


def test_the_compiler_leaves_graph_validation_to_the_validator(catalog: NodeRegistry) -> None:
    graph = compile_program('a = llm.structured(prompt="x")\noutput("a", a)\n', catalog)
    assert [issue.code for issue in validate_graph(graph, catalog)] == ["missing_input"]


# -- what is rejected ------------------------------------------------------------------

REJECTED = [
    # (id, source, code, words in the message)
    ("unknown-call", 'x = foo(a=1)\n', "unknown_node_type", "'foo'"),
    ("builtin-call", 'x = print(a=1)\n', "unknown_node_type", "'print'"),
    ("unknown-dotted", 'x = text.templat(template="a")\n', "unknown_node_type", "'text.templat'"),
    ("module-call", 'x = os.system(command="ls")\n', "unknown_node_type", "'os.system'"),
    ("attribute-value", 'a = text.template(template="x")\nb = text.template(template=a.text)\n', "program_form",
     "attribute access"),
    ("import", "import os\n", "program_form", "import"),
    ("from-import", "from os import path\n", "program_form", "import"),
    ("list-comprehension", 'x = text.join(items=[s for s in "ab"])\n', "program_form", "comprehension"),
    ("dict-comprehension", 'x = json.object(data={k: 1 for k in "ab"})\n', "program_form", "comprehension"),
    ("generator", 'x = math.sum(values=list(v for v in [1]))\n', "program_form", "call inside"),
    ("generator-bare", 'x = math.sum(values=(v for v in [1]))\n', "program_form", "comprehension"),
    ("lambda", 'x = text.template(template=lambda: "a")\n', "program_form", "lambda"),
    ("f-string", 'n = input("n", "Text")\nx = text.template(template=f"hi {n}")\n', "program_form", "f-string"),
    ("if", "if True:\n    x = 1\n", "program_form", "if statement"),
    ("for", "for i in [1]:\n    pass\n", "program_form", "for loop"),
    ("while", "while False:\n    pass\n", "program_form", "while loop"),
    ("def", "def f():\n    return 1\n", "program_form", "function definition"),
    ("class", "class A:\n    pass\n", "program_form", "class definition"),
    ("with", 'with open("x") as f:\n    pass\n', "program_form", "with statement"),
    ("try", "try:\n    pass\nexcept Exception:\n    pass\n", "program_form", "try statement"),
    ("positional", 'x = text.template("hello")\n', "program_form", "positional argument"),
    ("nested-call", 'x = llm.chat(prompt=text.template(template="a"))\n', "program_form", "call inside"),
    ("splat", 'x = text.template(**{"template": "a"})\n', "program_form", "splat"),
    ("used-before-assignment", 'a = text.template(template="{{ b }}", b=b)\nb = text.template(template="x")\n',
     "unknown_name", "before it is assigned"),
    ("undefined-name", 'a = text.template(template="{{ b }}", b=nowhere)\n', "unknown_name", "not defined"),
    ("reassignment", 'a = text.template(template="x")\na = text.template(template="y")\n', "duplicate_name",
     "assigned twice"),
    ("unpacking", 'a, b = text.template(template="x")\n', "program_form", "one plain name"),
    ("chained-assignment", 'a = b = text.template(template="x")\n', "program_form", "one plain name"),
    ("unassigned-node", 'text.template(template="x")\n', "program_form", "must be assigned"),
    ("ambiguous-output", 'p = http.request(url="u")\nt = text.template(template="{{ x }}", x=p)\n',
     "ambiguous_output", "(status, headers, text, json)"),
    ("input-subscript", 'n = input("n", "Text")\nt = text.template(template="x", v=n["text"])\n', "program_form",
     "graph input"),
    ("computed-subscript", 'p = http.request(url="u")\nt = text.template(template="x", v=p[0])\n', "program_form",
     "output name in quotes"),
    ("operator", 'a = math.add(a=1 + 2)\n', "program_form", "operator"),
    ("comparison", 'a = math.add(a=1 < 2)\n', "program_form", "comparison"),
    ("syntax", "a = text.template(template=\n", "program_syntax", "line 1"),
    ("assigned-literal", 'a = "hello"\n', "program_form", "assigned a literal"),
    ("alias", 'a = text.template(template="x")\nb = a\n', "program_form", "assigned an expression"),
    ("augmented", "a += 1\n", "program_form", "augmented assignment"),
    ("walrus", 'a = math.add(a=(b := 1))\n', "program_form", ":="),
    ("tuple", 'a = text.join(items=("a", "b"))\n', "program_form", "tuple"),
    ("set", 'a = text.join(items={"a", "b"})\n', "program_form", "set"),
    ("bytes", 'a = text.template(template=b"x")\n', "program_form", "bytes"),
    ("link-in-list", 'a = text.template(template="x")\nb = text.join(items=[a, "y"])\n', "program_form",
     "literal values only"),
    ("output-of-input", 'n = input("n", "Text")\noutput("n", n)\n', "program_form", "must be a node output"),
    ("output-literal", 'output("n", "text")\n', "program_form", "must be a node output"),
    ("duplicate-output", 'a = text.template(template="x")\noutput("o", a)\noutput("o", a)\n', "duplicate_name",
     "two graph outputs"),
    ("duplicate-input", 'a = input("n", "Text")\nb = input("n", "Int")\n', "duplicate_name", "two inputs"),
    ("input-option", 'a = input("n", "Text", secret=True)\n', "program_form", "no argument 'secret'"),
    ("input-name", 'a = input(3, "Text")\n', "program_form", "must be a string"),
    ("input-unassigned", 'input("n", "Text")\n', "program_form", "must be assigned"),
    ("input-type", 'a = input("n", "Txt")\n', "invalid_type", "unknown type"),
    ("reserved-name", 'output = text.template(template="x")\n', "program_form", "statement of the language"),
    ("configure-unknown", 'configure(ghost, timeout=3)\n', "unknown_name", "'ghost'"),
    ("bare-expression", '"doc"\n42\n', "program_form", "bare expression"),
    ("await", 'a = text.template(template=await x)\n', "program_form", "await"),
    ("starred", 'a = text.join(items=[*b])\n', "program_form", "splat"),
    ("infinite", 'a = math.add(a=1e999)\n', "program_form", "finite"),
    ("output-of-call", 'output("a", text.template(template="x"))\n', "program_form", "must be a node output"),
    ("call-of-call", 'a = text.template(template="x")\nb = a(template="y")\n', "unknown_node_type", "'a'"),
    ("subscript-callee", 'a = nodes["text.template"](template="y")\n', "program_form", "node type"),
]


@pytest.mark.parametrize(("source", "code", "words"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_forms_outside_the_language_are_structured_errors(
    source: str, code: str, words: str, catalog: NodeRegistry
) -> None:
    found = problems(source, catalog)
    assert any(issue["code"] == code and words in issue["message"] for issue in found), found
    assert all(issue["message"].startswith("line ") for issue in found), found


def test_unknown_node_types_come_with_the_nearest_names(catalog: NodeRegistry) -> None:
    (issue,) = problems('x = llm.chatt(prompt="hi")\noutput("x", x)\n', catalog)
    assert issue["node"] == "x"
    assert "'llm.chat'" in (issue["hint"] or "")


def test_every_problem_is_reported_at_once_with_its_variable_and_port(catalog: NodeRegistry) -> None:
    source = (
        "import os\n"
        'a = text.templat(template="x")\n'
        'b = text.template(template=f"{a}", n=os.sep)\n'
        "c = json.extract(data=[x for x in y], path=missing)\n"
    )
    found = problems(source, catalog)
    summary = [(issue["code"], issue["node"], issue["port"], issue["message"].split(":")[0]) for issue in found]
    assert summary == [
        ("program_form", None, None, "line 1, column 1"),
        ("unknown_node_type", "a", None, "line 2, column 5"),
        ("program_form", "b", "template", "line 3, column 28"),
        ("program_form", "b", "n", "line 3, column 38"),
        ("program_form", "c", "data", "line 4, column 23"),
        ("unknown_name", "c", "path", "line 4, column 44"),
    ]


def test_a_program_error_renders_as_the_uniform_error_body(catalog: NodeRegistry) -> None:
    with pytest.raises(ProgramError) as caught:
        compile_program("x = (", catalog)
    body = caught.value.to_dict()
    assert body["error"]["code"] == "program_invalid"
    (issue,) = body["error"]["details"]["issues"]
    assert issue["code"] == "program_syntax"
    assert issue["message"].startswith("line 1, column 5:")
    json.dumps(body)


PROGRAM_WORDS = [
    "a", "b", "=", "(", ")", "[", "]", "{", "}", ",", ":", ".", "\n", " ", '"x"', "'t'", "1", "-", "2.5", "*", "**",
    "text.template", "template=", "input", "output", "configure", "llm.chat", "prompt=", "lambda", "for", "in",
    "import", "if", "None", "True", '"Text"', "#", "\\", "def", "yield", "await", "\x00", "é", "f'{a}'",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PROGRAM_WORDS), max_size=40) | st.text(max_size=80))
def test_any_text_either_compiles_or_is_a_program_error(words: list[str] | str) -> None:
    source = words if isinstance(words, str) else "".join(words)
    result: Graph | ProgramError
    try:
        result = compile_program(source, builtin_registry_cached())
    except ProgramError as error:
        result = error
    if isinstance(result, ProgramError):
        assert result.issues
        assert all(issue.code and issue.message.startswith(("line ", "the program")) for issue in result.issues)
    else:
        assert isinstance(result, Graph)


def test_deeply_nested_values_are_a_program_error(catalog: NodeRegistry) -> None:
    found = problems("a = text.template(template=" + "[" * 5000 + "]" * 5000 + ")\n", catalog)
    assert found[0]["code"] in {"program_syntax", "program_form"}


_REGISTRY: list[NodeRegistry] = []


def builtin_registry_cached() -> NodeRegistry:
    if not _REGISTRY:
        _REGISTRY.append(builtin_registry())
    return _REGISTRY[0]


# -- graph to program and back ---------------------------------------------------------


def assert_round_trip(graph: Graph, catalog: NodeRegistry) -> None:
    expected = graph.to_json()
    expected.pop("metadata", None)
    for shorthand in (None, catalog):
        program = decompile(graph, catalog=shorthand)
        assert compile_program(program, catalog, name=graph.name).to_json() == expected, program


@pytest.mark.parametrize("path", EXAMPLE_GRAPHS + CASE_FILES, ids=lambda p: p.parent.name + "/" + p.stem)
def test_example_and_benchmark_graphs_round_trip(path: Path, catalog: NodeRegistry) -> None:
    data = json.loads(path.read_text())
    graph = Graph.from_json(data.get("reference", data))
    assert_round_trip(graph, catalog)


def test_node_options_and_link_shaped_literals_round_trip(catalog: NodeRegistry) -> None:
    graph = Graph("options", "with\nnewlines and 'quotes'")
    topic = graph.input("topic", "Text", default="tea")
    intro = graph.add("text.template", "intro", template="About {{ topic }}", topic=topic)
    graph.add("json.extract", "pick", data={"input": "topic"}, path="node").configure(
        retry={"max_attempts": 2}, timeout=5, queue="custom", label="Pick one"
    )
    graph.output("intro", intro["text"])
    assert_round_trip(graph, catalog)


def test_an_optional_output_after_a_branch_round_trips(catalog: NodeRegistry) -> None:
    source = ('level = input("level", "Float", default=10.0)\n'
              'low = math.compare(a=level, b=20.0, op="<")\n'
              'gate = control.branch(condition=low, value=level)\n'
              'output("level", gate["true"], optional=True)\n')
    graph = compile_program(source, catalog)
    assert graph.optional_outputs == {"level"} and validate_graph(graph, catalog) == []
    assert "optional=True" in decompile(graph, catalog=catalog)
    assert_round_trip(graph, catalog)
    assert problems(source.replace("optional=True", "optional='yes'"), catalog)[0]["code"] == "program_form"


def test_decompile_renames_what_is_not_a_python_name(catalog: NodeRegistry) -> None:
    graph = Graph("names")
    graph.input("class", "Text", default="x")
    first = graph.add("text.template", "my-node", template="{{ v }}", v=InputRef("class"))
    graph.add("text.template", "input", template="{{ v }}", v=first["text"])
    clash = graph.add("text.template", "topic", template="x")
    graph.input("topic", "Text", default="y")
    graph.output("out", clash["text"])
    program = decompile(graph)
    compiled = compile_program(program, catalog)
    assert set(compiled.nodes) == {"my_node", "input_", "topic"}
    assert set(compiled.inputs) == {"class", "topic"}
    assert compiled.nodes["input_"].inputs["v"] == Link("my_node", "text")
    assert compiled.nodes["my_node"].inputs["v"] == InputRef("class")


def test_decompile_refuses_what_no_program_can_express(catalog: NodeRegistry) -> None:
    graph = Graph("loop")
    graph.add("text.template", "a", template="x", v=Link("b", "text"))
    graph.add("text.template", "b", template="x", v=Link("a", "text"), w=Link("ghost", "text"))
    graph.add("text.template", "c", **{"template": "x", "not-a-name": 1})
    with pytest.raises(ProgramError) as caught:
        decompile(graph)
    assert {issue.code for issue in caught.value.issues} == {"cycle", "dangling_link", "program_form"}


def test_decompile_reports_a_malformed_document_as_a_program_error() -> None:
    with pytest.raises(ProgramError) as caught:
        decompile({"nodes": {"a": {"type": 3}}, "outputs": {}})
    assert caught.value.issues[0].code == "invalid_format"


# random well-formed graphs: every node type from the catalog, links only to earlier nodes
# (inserted in a shuffled order), literals of every JSON kind, node options and inputs.

_NAMES = st.sampled_from(
    ["a", "b", "brief", "card", "story", "topic", "n1", "x_2", "scenes", "seed", "Lamp", "_hidden", "v", "page"]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_INPUT_KINDS = {
    "Text": st.text(max_size=10),
    "Int": st.integers(-5, 5),
    "Float": st.floats(-10, 10),
    "Bool": st.booleans(),
    "Json": _JSON,
    "List[Text]": st.lists(st.text(max_size=4), max_size=3),
}
_NODE_TYPES = sorted(builtin_registry().types())


@st.composite
def random_graphs(draw: st.DrawFn) -> Graph:
    graph = Graph(draw(st.text(max_size=8)), draw(st.text(max_size=20)))
    for name in draw(st.lists(_NAMES, max_size=4, unique=True)):
        kind = draw(st.sampled_from(sorted(_INPUT_KINDS)))
        options: dict[str, Any] = {}
        if draw(st.booleans()):
            options["default"] = draw(_INPUT_KINDS[kind])
        if kind == "Int" and draw(st.booleans()):
            options.update(min=-5, max=5)
        graph.input(name, kind, description=draw(st.text(max_size=10)), **options)
    ids = draw(st.lists(_NAMES, min_size=1, max_size=8, unique=True))
    nodes: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
    for index, node_id in enumerate(ids):
        inputs: dict[str, Any] = {}
        for port in draw(st.lists(_NAMES, max_size=4, unique=True)):
            choices = ["literal"] + (["link"] if index else []) + (["input"] if graph.inputs else [])
            kind = draw(st.sampled_from(choices))
            if kind == "link":
                inputs[port] = Link(draw(st.sampled_from(ids[:index])), draw(st.text(min_size=1, max_size=5)))
            elif kind == "input":
                inputs[port] = InputRef(draw(st.sampled_from(sorted(graph.inputs))))
            else:
                inputs[port] = draw(_JSON)
        options = draw(st.fixed_dictionaries({}, optional={
            "label": st.text(max_size=8),
            "timeout": st.floats(0.5, 100),
            "queue": st.text(min_size=1, max_size=8),
            "retry": st.fixed_dictionaries({"max_attempts": st.integers(1, 4)}),
        }))
        nodes.append((node_id, draw(st.sampled_from(_NODE_TYPES)), inputs, options))
    for node_id, node_type, inputs, options in draw(st.permutations(nodes)):
        graph.add(node_type, node_id, **inputs)
        if options:
            graph.configure(node_id, **options)
    for name in draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3, unique=True)):
        graph.output(name, Link(draw(st.sampled_from(ids)), draw(st.sampled_from(["text", "data", "value"]))))
    return graph


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_random_graphs_round_trip(graph: Graph) -> None:
    assert_round_trip(graph, builtin_registry_cached())
