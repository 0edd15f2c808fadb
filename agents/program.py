"""Graphs as restricted Python: `compile_program` (code to graph) and `decompile` (graph to code).

A program is a list of module-level statements of three kinds::

    "Writes a title card for a product."            # optional: the graph's description
    product = input("product", "Text", default="Loom Lamp", description="the product")
    brief = text.template(template="Write about {{ p }}", p=product)
    story = llm.structured(prompt=brief, schema={"type": "object"})
    card = image.title_card(text=story["data"])      # ["port"] picks a named output
    configure(card, label="The card", timeout=30)   # optional node options
    output("poster", card)                           # a graph output (optional=True: may be absent)

The code is read with `ast.parse` and its tree is walked; nothing is ever executed. Every
form outside this language (other statements, nested calls, attribute access, operators,
comprehensions, lambdas, f-strings, imports, ...) is reported as a `ValidationIssue` in a
`ProgramError`, all problems at once. The user's guide is docs/drafting-programs.md.
"""

from __future__ import annotations

import ast
import difflib
import keyword
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nodeloom.core.errors import GraphValidationError
from nodeloom.core.graph import Graph, InputRef, Link, NodeInstance, as_graph
from nodeloom.core.graph_parts import literal_to_json
from nodeloom.core.ports import REQUIRED
from nodeloom.core.validate import NodeCatalog, ValidationIssue, read_graph_document

#: calls that are statements of the language, not node types
INPUT_CALL = "input"
OUTPUT_CALL = "output"
CONFIGURE_CALL = "configure"
RESERVED_NAMES = frozenset({INPUT_CALL, OUTPUT_CALL, CONFIGURE_CALL})
INPUT_OPTIONS = ("default", "description", "min", "max", "choices", "pattern")
NODE_OPTIONS = ("label", "timeout", "retry", "queue")
_LINE_WIDTH = 100

_FORM_HINT = "a program holds only `name = node.type(port=value, ...)`, `name = input(...)` and `output(...)`"
_STATEMENT_NAMES: dict[type[ast.AST], str] = {
    ast.Import: "an import",
    ast.ImportFrom: "an import",
    ast.If: "an if statement",
    ast.For: "a for loop",
    ast.AsyncFor: "a for loop",
    ast.While: "a while loop",
    ast.FunctionDef: "a function definition",
    ast.AsyncFunctionDef: "a function definition",
    ast.ClassDef: "a class definition",
    ast.With: "a with statement",
    ast.AsyncWith: "a with statement",
    ast.Try: "a try statement",
    ast.TryStar: "a try statement",
    ast.Return: "a return statement",
    ast.Delete: "a del statement",
    ast.Global: "a global statement",
    ast.Nonlocal: "a nonlocal statement",
    ast.Pass: "a pass statement",
    ast.Break: "a break statement",
    ast.Continue: "a continue statement",
    ast.Raise: "a raise statement",
    ast.Assert: "an assert statement",
    ast.Match: "a match statement",
    ast.AugAssign: "an augmented assignment (+=, ...)",
    ast.AnnAssign: "an annotated assignment",
}
_EXPRESSION_NAMES: dict[type[ast.AST], tuple[str, str]] = {
    ast.ListComp: ("a comprehension", "write the list out, or map a node over a list with control.map"),
    ast.SetComp: ("a comprehension", "write the list out, or map a node over a list with control.map"),
    ast.DictComp: ("a comprehension", "write the object out as a literal"),
    ast.GeneratorExp: ("a comprehension", "write the list out, or map a node over a list with control.map"),
    ast.Lambda: ("a lambda", "use a node for the computation"),
    ast.JoinedStr: ("an f-string", "use text.template with {{ name }} placeholders and pass the values as inputs"),
    ast.BinOp: ("an operator expression", "use a node (math.*, text.template, text.join) to compute the value"),
    ast.BoolOp: ("a boolean expression", "give the literal value, or compute it with a node"),
    ast.Compare: ("a comparison", "give the literal value, or compute it with a node"),
    ast.UnaryOp: ("an operator expression", "only a minus sign before a number is allowed"),
    ast.IfExp: ("a conditional expression", "give the literal value"),
    ast.NamedExpr: ("an assignment expression (:=)", "assign with `name = ...` as a statement"),
    ast.Await: ("await", "node calls are written without await"),
    ast.Yield: ("yield", _FORM_HINT),
    ast.YieldFrom: ("yield", _FORM_HINT),
    ast.Starred: ("a * splat", "give each value by name"),
    ast.Set: ("a set", "use a list [...]"),
    ast.Tuple: ("a tuple", "use a list [...]"),
    ast.Slice: ("a slice", "use a node such as json.extract to pick items"),
}


class ProgramError(GraphValidationError):
    """A program is outside the restricted form or cannot become a graph; `issues` lists every problem.

    Each issue's `node` is the variable concerned, `port` the keyword, and the message starts
    with the line and column (`line 3, column 9: ...`).
    """

    code = "program_invalid"
    subject = "program"


@dataclass(frozen=True)
class _Binding:
    """What a variable names: a node (`target` is its id) or a graph input (`target` is its name)."""

    kind: str
    target: str
    #: the node's output names, in order; None when its type is unknown
    outputs: tuple[str, ...] | None = None


class _Invalid:
    """Marks a value that could not be compiled (its problem is already reported)."""


_INVALID = _Invalid()


def _where(node: ast.AST) -> str:
    line = getattr(node, "lineno", None)
    column = getattr(node, "col_offset", None)
    if line is None:
        return ""
    return f"line {line}, column {(column or 0) + 1}: "


def _dotted_name(node: ast.expr) -> str | None:
    """`a.b.c` as text, or None when the expression is not a chain of names."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


class _Compiler:
    def __init__(self, catalog: NodeCatalog) -> None:
        self.catalog = catalog
        self.issues: list[ValidationIssue] = []
        self.bindings: dict[str, _Binding] = {}
        #: variable -> line, for every name assigned anywhere (to tell "used before assignment")
        self.assigned_later: dict[str, int] = {}
        self.lines: dict[str, int] = {}
        self.description = ""
        self.inputs: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, str]] = {}

    def report(
        self,
        code: str,
        at: ast.AST | None,
        message: str,
        *,
        var: str | None = None,
        port: str | None = None,
        hint: str | None = None,
    ) -> None:
        prefix = _where(at) if at is not None else ""
        self.issues.append(ValidationIssue(code, prefix + message, node=var, port=port, hint=hint))

    # -- statements ----------------------------------------------------------------
    def run(self, tree: ast.Module) -> None:
        for statement in tree.body:
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    if isinstance(target, ast.Name):
                        self.assigned_later.setdefault(target.id, statement.lineno)
        for index, statement in enumerate(tree.body):
            if isinstance(statement, ast.Assign):
                self.assignment(statement)
            elif isinstance(statement, ast.Expr):
                self.expression_statement(statement, first=index == 0)
            else:
                kind = _STATEMENT_NAMES.get(type(statement), f"a {type(statement).__name__} statement")
                self.report("program_form", statement, f"{kind} is not allowed", hint=_FORM_HINT)

    def assignment(self, statement: ast.Assign) -> None:
        if len(statement.targets) != 1 or not isinstance(statement.targets[0], ast.Name):
            self.report(
                "program_form",
                statement,
                "assign to exactly one plain name (no `a = b = ...`, unpacking, attributes or items)",
                hint="name = node.type(port=value, ...)",
            )
            return
        var = statement.targets[0].id
        if var in RESERVED_NAMES:
            self.report("program_form", statement, f"{var!r} is a statement of the language, not a name to assign",
                        var=var, hint="pick another name")
            return
        if var in self.bindings or var in self.lines:
            self.report("duplicate_name", statement,
                        f"{var!r} is assigned twice (first on line {self.lines[var]}); each name is assigned once",
                        var=var, hint="give the second node its own name")
            return
        self.lines[var] = statement.lineno
        value = statement.value
        if not isinstance(value, ast.Call):
            what = "a literal" if isinstance(value, ast.Constant | ast.List | ast.Dict) else "an expression"
            self.report("program_form", value, f"{var!r} is assigned {what}; a name is assigned a node call or "
                        "input(...)", var=var,
                        hint="pass literals as keyword arguments of the node that uses them")
            return
        callee = _dotted_name(value.func)
        if callee == INPUT_CALL:
            self.graph_input(var, value)
        elif callee in (OUTPUT_CALL, CONFIGURE_CALL):
            self.report("program_form", value, f"{callee}(...) returns nothing; write it as a statement on its own",
                        var=var)
        elif callee is None:
            self.report("program_form", value.func, "the called thing must be a node type such as text.template",
                        var=var, hint="assign intermediate results to names first")
        else:
            self.node_call(var, callee, value)

    def expression_statement(self, statement: ast.Expr, *, first: bool) -> None:
        value = statement.value
        if first and isinstance(value, ast.Constant) and isinstance(value.value, str):
            self.description = value.value
            return
        if isinstance(value, ast.Call):
            callee = _dotted_name(value.func)
            if callee == OUTPUT_CALL:
                self.graph_output(value)
                return
            if callee == CONFIGURE_CALL:
                self.configure(value)
                return
            if callee == INPUT_CALL:
                self.report("program_form", value, "input(...) must be assigned to a name",
                            hint='product = input("product", "Text")')
                return
            if callee is not None and self.catalog.find(callee) is not None:
                self.report("program_form", value, f"the {callee} node must be assigned to a name",
                            hint=f"name = {callee}(...); the name becomes the node id")
                return
        self.report("program_form", statement, "a bare expression is not allowed", hint=_FORM_HINT)

    # -- calls ---------------------------------------------------------------------
    def node_call(self, var: str, callee: str, call: ast.Call) -> None:
        definition = self.catalog.find(callee)
        outputs: tuple[str, ...] | None = None
        if definition is None:
            suggestions = self.catalog.suggest(callee)
            hint = f"did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else None
            what = "node type" if "." in callee else "name to call; node types are dotted, e.g. text.template"
            self.report("unknown_node_type", call.func, f"{callee!r} is not a known {what}", var=var, hint=hint)
        else:
            outputs = tuple(port.name for port in definition.spec.outputs)
        ports = ", ".join(p.name for p in definition.spec.inputs) if definition is not None else None
        for argument in call.args:
            self.report("program_form", argument, f"positional argument to {callee}; node inputs are given by name",
                        var=var, hint=f"write port=value; ports: {ports}" if ports else "write port=value")
        inputs: dict[str, Any] = {}
        for item in call.keywords:
            if item.arg is None:
                self.report("program_form", item.value, "a ** splat is not allowed; give each input by name", var=var)
                continue
            value = self.value(item.value, var, item.arg)
            if value is not _INVALID:
                inputs[item.arg] = value
        self.nodes[var] = {"type": callee, "inputs": inputs}
        self.bindings[var] = _Binding("node", var, outputs)

    def graph_input(self, var: str, call: ast.Call) -> None:
        given = self.call_arguments(call, var, ("name", "type"), INPUT_OPTIONS, INPUT_CALL)
        name_node = given.get("name")
        type_node = given.get("type")
        name = self.literal(name_node, var, "name") if name_node is not None else _INVALID
        port_type = self.literal(type_node, var, "type") if type_node is not None else "Any"
        if name_node is None:
            self.report("program_form", call, "input(...) needs a name: input(\"name\", \"Text\")", var=var)
        elif name is not _INVALID and not isinstance(name, str):
            self.report("program_form", name_node, "the input's name must be a string", var=var, port="name")
            name = _INVALID
        if port_type is not _INVALID and not isinstance(port_type, str | dict):
            self.report("program_form", type_node or call, 'the type is a string such as "Text" or "List[Image]"',
                        var=var, port="type")
            port_type = _INVALID
        declared: dict[str, Any] = {"type": port_type}
        complete = port_type is not _INVALID
        for option in INPUT_OPTIONS:
            if option in given:
                literal = self.literal(given[option], var, option)
                complete = complete and literal is not _INVALID
                declared[option] = literal_to_json(literal) if option == "default" else literal
        if not isinstance(name, str):
            return
        if any(b.kind == "input" and b.target == name for b in self.bindings.values()):
            self.report("duplicate_name", call, f"two inputs are named {name!r}", var=var, port=name)
            return
        self.bindings[var] = _Binding("input", name)
        if complete:
            self.inputs[name] = declared

    def graph_output(self, call: ast.Call) -> None:
        given = self.call_arguments(call, None, ("name", "value"), ("optional",), OUTPUT_CALL)
        if "name" not in given or "value" not in given:
            self.report("program_form", call, "output(...) takes a name and a node output: output(\"video\", render)")
            return
        name = self.literal(given["name"], None, "name")
        if name is _INVALID:
            return
        if not isinstance(name, str):
            self.report("program_form", given["name"], "the output's name must be a string")
            return
        source = given["value"]
        value = self.value(source, None, name) if isinstance(source, ast.Name | ast.Subscript) else None
        if value is _INVALID:
            return
        if not (isinstance(value, dict) and set(value) == {"node", "output"}):
            self.report("program_form", given["value"], f"graph output {name!r} must be a node output",
                        port=name, hint="write output(\"name\", node_var) or output(\"name\", node_var[\"port\"])")
            return
        if name in self.outputs:
            self.report("duplicate_name", call, f"two graph outputs are named {name!r}", port=name)
            return
        if "optional" in given:  # output("value", gate["true"], optional=True): absent when a branch skips it
            optional = self.literal(given["optional"], None, "optional")
            if not isinstance(optional, bool):
                self.report("program_form", given["optional"], "optional= takes True or False", port=name)
                return
            if optional:
                value = {**value, "optional": True}
        self.outputs[name] = value

    def configure(self, call: ast.Call) -> None:
        given = self.call_arguments(call, None, ("node",), NODE_OPTIONS, CONFIGURE_CALL)
        target = given.get("node")
        if not isinstance(target, ast.Name):
            self.report("program_form", target or call, "configure(...) takes a node's name first: "
                        "configure(render, timeout=60)")
            return
        binding = self.bindings.get(target.id)
        if binding is None or binding.kind != "node":
            self.report("unknown_name", target, f"{target.id!r} is not a node assigned above", var=target.id)
            return
        node = self.nodes.get(target.id)
        for option in NODE_OPTIONS:
            if option in given:
                literal = self.literal(given[option], target.id, option)
                if literal is _INVALID or node is None:
                    continue
                if option in node:
                    self.report("duplicate_name", given[option], f"{option} of {target.id!r} is set twice",
                                var=target.id, port=option)
                node[option] = literal

    def call_arguments(
        self, call: ast.Call, var: str | None, positional: Sequence[str], options: Sequence[str], callee: str
    ) -> dict[str, ast.expr]:
        """Match the arguments of input/output/configure to their names, reporting what does not fit."""
        given: dict[str, ast.expr] = {}
        for index, argument in enumerate(call.args):
            if index >= len(positional) or isinstance(argument, ast.Starred):
                self.report("program_form", argument, f"too many positional arguments to {callee}(...)", var=var,
                            hint=f"it takes {', '.join(positional)} and then keywords: {', '.join(options)}")
                continue
            given[positional[index]] = argument
        for item in call.keywords:
            if item.arg is None:
                self.report("program_form", item.value, "a ** splat is not allowed", var=var)
            elif item.arg in given:
                self.report("program_form", item.value, f"{item.arg} is given twice", var=var, port=item.arg)
            elif item.arg not in positional and item.arg not in options:
                allowed = ", ".join((*positional, *options))
                self.report("program_form", item.value, f"{callee}(...) has no argument {item.arg!r}", var=var,
                            port=item.arg, hint=f"allowed: {allowed}")
            else:
                given[item.arg] = item.value
        return given

    # -- values --------------------------------------------------------------------
    def value(self, expr: ast.expr, var: str | None, port: str) -> Any:
        """A node input in its JSON form: a link, a graph input reference or a literal."""
        if isinstance(expr, ast.Name):
            return self.reference(expr, var, port)
        if isinstance(expr, ast.Subscript):
            return self.named_output(expr, var, port)
        literal = self.literal(expr, var, port)
        return _INVALID if literal is _INVALID else literal_to_json(literal)

    def reference(self, expr: ast.Name, var: str | None, port: str) -> Any:
        binding = self.bindings.get(expr.id)
        if binding is None:
            self.unknown_name(expr, var, port)
            return _INVALID
        if binding.kind == "input":
            return InputRef(binding.target).to_json()
        if binding.outputs is None:
            return _INVALID
        if len(binding.outputs) == 1:
            return Link(binding.target, binding.outputs[0]).to_json()
        choices = ", ".join(f'{expr.id}["{name}"]' for name in binding.outputs)
        self.report("ambiguous_output", expr, f"{expr.id!r} has {len(binding.outputs)} outputs "
                    f"({', '.join(binding.outputs)}); say which", var=var, port=port, hint=f"one of {choices}")
        return _INVALID

    def named_output(self, expr: ast.Subscript, var: str | None, port: str) -> Any:
        source = expr.value
        key = expr.slice
        if not isinstance(source, ast.Name):
            hint = "assign the call to a name first" if isinstance(source, ast.Call) else (
                "pick a part of a JSON value with json.extract")
            self.report("program_form", expr, "only a node's name can be indexed, as node[\"output\"]", var=var,
                        port=port, hint=hint)
            return _INVALID
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            self.report("program_form", key, f"{source.id}[...] takes an output name in quotes", var=var,
                        port=port, hint="to pick a list item or JSON field use json.extract")
            return _INVALID
        binding = self.bindings.get(source.id)
        if binding is None:
            self.unknown_name(source, var, port)
            return _INVALID
        if binding.kind == "input":
            self.report("program_form", expr, f"{source.id!r} is a graph input; it has no named outputs",
                        var=var, port=port, hint=f"use {source.id} itself")
            return _INVALID
        return Link(binding.target, key.value).to_json()

    def unknown_name(self, expr: ast.Name, var: str | None, port: str) -> None:
        later = self.assigned_later.get(expr.id)
        if expr.id in self.lines:
            message = f"{expr.id!r} cannot be used: its assignment on line {self.lines[expr.id]} has an error"
            hint = "fix that line first"
        elif later is not None and expr.id not in RESERVED_NAMES:
            message = f"{expr.id!r} is used before it is assigned (on line {later})"
            hint = "move its assignment above this line"
        else:
            message = f"{expr.id!r} is not defined"
            near = difflib.get_close_matches(expr.id, list(self.bindings), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(near)}?" if near else "assign it above, or write a literal in quotes"
        self.report("unknown_name", expr, message, var=var, port=port, hint=hint)

    def literal(self, expr: ast.expr, var: str | None, port: str) -> Any:
        """A JSON literal (str, number, bool, None, lists and objects of them), or _INVALID."""
        if isinstance(expr, ast.Constant):
            value = expr.value
            if isinstance(value, float) and not math.isfinite(value):
                self.report("program_form", expr, "numbers must be finite", var=var, port=port)
                return _INVALID
            if value is None or isinstance(value, str | int | float | bool):
                return value
            self.report("program_form", expr, f"{type(value).__name__} literals are not allowed", var=var,
                        port=port, hint="use a string, number, true/false, None, a list or an object")
            return _INVALID
        if (isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.USub) and isinstance(expr.operand, ast.Constant)
                and isinstance(expr.operand.value, int | float) and not isinstance(expr.operand.value, bool)):
            return self.literal(ast.copy_location(ast.Constant(-expr.operand.value), expr), var, port)
        if isinstance(expr, ast.List):
            items = [self.literal(item, var, port) for item in expr.elts]
            return _INVALID if any(item is _INVALID for item in items) else items
        if isinstance(expr, ast.Dict):
            return self.literal_object(expr, var, port)
        if isinstance(expr, ast.Name | ast.Subscript):
            self.report("program_form", expr, "a list, object or option holds literal values only, not links",
                        var=var, port=port, hint="pass the link as a node input of its own (text.join, "
                        "json.merge, ... build values from several inputs)")
            return _INVALID
        self.expression_error(expr, var, port)
        return _INVALID

    def literal_object(self, expr: ast.Dict, var: str | None, port: str) -> Any:
        result: dict[str, Any] = {}
        ok = True
        for key, item in zip(expr.keys, expr.values, strict=True):
            if key is None:
                self.report("program_form", item, "a ** splat is not allowed in an object", var=var, port=port)
                ok = False
                continue
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                self.report("program_form", key, "object keys must be strings in quotes", var=var, port=port)
                ok = False
                continue
            if key.value in result:
                self.report("program_form", key, f"key {key.value!r} appears twice", var=var, port=port)
                ok = False
            value = self.literal(item, var, port)
            if value is _INVALID:
                ok = False
            result[key.value] = value
        return result if ok else _INVALID

    def expression_error(self, expr: ast.expr, var: str | None, port: str) -> None:
        if isinstance(expr, ast.Call):
            self.report("program_form", expr, "a call inside an argument is not allowed", var=var, port=port,
                        hint="assign it to a name first, then pass the name")
            return
        if isinstance(expr, ast.Attribute):
            base = expr.value
            bound = isinstance(base, ast.Name) and base.id in self.bindings
            hint = (f'to use an output write {base.id}["{expr.attr}"]' if isinstance(base, ast.Name) and bound
                    else "pick a node's output with node[\"output\"]")
            self.report("program_form", expr, "attribute access is not allowed", var=var, port=port, hint=hint)
            return
        kind, hint = _EXPRESSION_NAMES.get(type(expr), (f"a {type(expr).__name__} expression", _FORM_HINT))
        self.report("program_form", expr, f"{kind} is not allowed here", var=var, port=port, hint=hint)

    # -- result --------------------------------------------------------------------
    def located(self, issue: ValidationIssue) -> ValidationIssue:
        """A format problem of the built graph, with the variable and line it concerns."""
        var = issue.node
        if var is None and issue.port is not None:
            var = next((name for name, b in self.bindings.items() if b.kind == "input" and b.target == issue.port),
                       None)
        line = self.lines.get(var) if var is not None else None
        if line is None:
            return issue
        return ValidationIssue(issue.code, f"line {line}: {issue.message}", node=var, port=issue.port,
                               hint=issue.hint, expected=issue.expected, received=issue.received)

    def document(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = {"format_version": 1, "name": name}
        if self.description:
            data["description"] = self.description
        data["inputs"] = self.inputs
        data["nodes"] = self.nodes
        data["outputs"] = self.outputs
        return data


def compile_program(source: str, catalog: NodeCatalog, *, name: str = "draft") -> Graph:
    """Compile a restricted program to a `Graph`, without running any of it.

    Raises `ProgramError` listing every problem found (syntax, forms outside the language,
    unknown node types, unknown or reused names, ambiguous outputs, bad input declarations).
    It does not validate the graph against the catalog beyond that: run `validate_graph`
    on the result for missing inputs, type mismatches and the like.
    """
    try:
        with warnings.catch_warnings():
            # warnings about odd but legal code ("invalid escape sequence") are not the user's business here
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(source, mode="exec")
    except SyntaxError as error:
        line, column = error.lineno or 1, error.offset or 1
        raise ProgramError(
            [ValidationIssue("program_syntax", f"line {line}, column {column}: {error.msg}",
                             hint=(error.text or "").strip() or None)]
        ) from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise ProgramError([ValidationIssue("program_syntax", f"the program cannot be read: {error}")]) from None
    compiler = _Compiler(catalog)
    try:
        compiler.run(tree)
    except RecursionError:
        compiler.issues.append(ValidationIssue("program_form", "a value is nested too deeply"))
    if compiler.issues:
        raise ProgramError(compiler.issues)
    graph, issues = read_graph_document(compiler.document(name))
    if issues or graph is None:
        raise ProgramError([compiler.located(issue) for issue in issues])
    return graph


# -- graph to program ----------------------------------------------------------------


def _is_variable(name: str) -> bool:
    return name.isidentifier() and name.isascii() and not keyword.iskeyword(name) and name not in RESERVED_NAMES


def _free_name(stem: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", stem, flags=re.ASCII) or "node"
    if not base[0].isalpha() and base[0] != "_":
        base = "n_" + base
    if keyword.iskeyword(base) or base in RESERVED_NAMES:
        base += "_"
    candidate, index = base, 2
    while candidate in taken:
        candidate = f"{base}_{index}"
        index += 1
    return candidate


def _literal_source(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int | str):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal_source(item) for item in value) + "]"
    if isinstance(value, Mapping):
        parts = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"object key {key!r} is not a string")
            parts.append(f"{key!r}: {_literal_source(item)}")
        return "{" + ", ".join(parts) + "}"
    raise ValueError(f"a {type(value).__name__} cannot be written as a literal")


def _call_source(head: str, arguments: Sequence[str]) -> str:
    one_line = f"{head}({', '.join(arguments)})"
    if len(one_line) <= _LINE_WIDTH or not arguments:
        return one_line
    return head + "(\n" + "".join(f"    {argument},\n" for argument in arguments) + ")"


def _node_order(graph: Graph) -> tuple[list[str], list[ValidationIssue]]:
    """Node ids with every node after the nodes it links to, keeping the given order where free."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: being visited, 2: done
    issues: list[ValidationIssue] = []

    def visit(node_id: str, path: list[str]) -> None:
        stack: list[tuple[str, Iterable[tuple[str, Link]]]] = [(node_id, iter(graph.nodes[node_id].links()))]
        state[node_id] = 1
        path.append(node_id)
        while stack:
            current, links = stack[-1]
            for port, link in links:
                if link.node not in graph.nodes:
                    issues.append(ValidationIssue("dangling_link", f"links to a node {link.node!r} that does not "
                                                  "exist", node=current, port=port))
                    continue
                seen = state.get(link.node)
                if seen == 1:
                    loop = " -> ".join([*path[path.index(link.node):], link.node])
                    issues.append(ValidationIssue("cycle", f"nodes depend on each other in a loop: {loop}",
                                                  node=current, port=port))
                    continue
                if seen is None:
                    state[link.node] = 1
                    path.append(link.node)
                    stack.append((link.node, iter(graph.nodes[link.node].links())))
                    break
            else:
                stack.pop()
                path.pop()
                state[current] = 2
                order.append(current)

    for node_id in graph.nodes:
        if node_id not in state:
            visit(node_id, [])
    return order, issues


def decompile(graph: Graph | Mapping[str, Any], *, catalog: NodeCatalog | None = None) -> str:
    """Write a graph as a restricted program; `compile_program` of the text gives the graph back.

    The round trip is exact for the graph's inputs, nodes, node options, outputs and
    description when every node id is a Python name (other ids are renamed, e.g. `my-node`
    becomes `my_node`); the name is the `name=` of `compile_program` and `metadata` is not
    written. With a `catalog`, a link to a node's only output is written as the bare name.
    Raises `ProgramError` for a graph that no program can express (a cycle, a dangling link,
    an input name that is not a Python keyword name, a value that is not JSON).
    """
    try:
        loaded = as_graph(graph)
    except GraphValidationError as error:
        raise ProgramError(error.issues) from None
    order, issues = _node_order(loaded)
    taken: set[str] = set()
    node_vars: dict[str, str] = {}
    for node_id in loaded.nodes:
        if _is_variable(node_id):
            node_vars[node_id] = node_id
            taken.add(node_id)
    for node_id in loaded.nodes:
        if node_id not in node_vars:
            node_vars[node_id] = _free_name(node_id, taken)
            taken.add(node_vars[node_id])
    input_vars: dict[str, str] = {}
    for input_name in loaded.inputs:
        chosen = input_name if _is_variable(input_name) and input_name not in taken else _free_name(
            f"{input_name}_input", taken)
        input_vars[input_name] = chosen
        taken.add(chosen)

    def single_output(node_id: str) -> str | None:
        if catalog is None:
            return None
        definition = catalog.find(loaded.nodes[node_id].type)
        if definition is None or len(definition.spec.outputs) != 1:
            return None
        return definition.spec.outputs[0].name

    def link_source(link: Link) -> str:
        var = node_vars.get(link.node, link.node)
        if link.node in loaded.nodes and single_output(link.node) == link.output:
            return var
        return f"{var}[{link.output!r}]"

    def value_source(value: Any, node: str | None, port: str) -> str:
        if isinstance(value, Link):
            return link_source(value)
        if isinstance(value, InputRef):
            if value.name not in input_vars:
                issues.append(ValidationIssue("dangling_link", f"refers to a graph input {value.name!r} that is "
                                              "not declared", node=node, port=port))
                return "None"
            return input_vars[value.name]
        try:
            return _literal_source(value)
        except (ValueError, RecursionError) as error:
            issues.append(ValidationIssue("program_form", f"cannot be written as a literal: {error}",
                                          node=node, port=port))
            return "None"

    lines: list[str] = []
    if loaded.description:
        lines.append(repr(loaded.description))
    for input_name, declared in loaded.inputs.items():
        data = declared.to_json()
        arguments = [repr(input_name), _literal_source(declared.type.to_json())]
        if declared.default is not REQUIRED:
            default = declared.default
            if isinstance(default, Link | InputRef):
                default = default.to_json()
            arguments.append(f"default={value_source(default, None, input_name)}")
            data.pop("default", None)
        arguments += [f"{key}={_literal_source(data[key])}" for key in INPUT_OPTIONS if key in data]
        lines.append(f"{input_vars[input_name]} = " + _call_source(INPUT_CALL, arguments))
    for node_id in order:
        instance: NodeInstance = loaded.nodes[node_id]
        arguments = []
        for port, value in instance.inputs.items():
            if not port.isidentifier() or keyword.iskeyword(port):
                issues.append(ValidationIssue("program_form", f"input {port!r} cannot be written as a keyword "
                                              "argument", node=node_id, port=port))
                continue
            arguments.append(f"{port}={value_source(value, node_id, port)}")
        lines.append(f"{node_vars[node_id]} = " + _call_source(instance.type, arguments))
        options = instance.to_json()
        configured = [f"{key}={_literal_source(options[key])}" for key in NODE_OPTIONS if key in options]
        if configured:
            lines.append(_call_source(CONFIGURE_CALL, [node_vars[node_id], *configured]))
    for output_name, link in loaded.outputs.items():
        if link.node not in loaded.nodes:
            issues.append(ValidationIssue("dangling_link", f"graph output {output_name!r} links to a node "
                                          f"{link.node!r} that does not exist", port=output_name))
            continue
        optional = ", optional=True" if output_name in loaded.optional_outputs else ""
        lines.append(f"{OUTPUT_CALL}({output_name!r}, {link_source(link)}{optional})")
    if issues:
        raise ProgramError(issues)
    return "\n".join(lines) + "\n"


__all__ = ["ProgramError", "compile_program", "decompile"]
