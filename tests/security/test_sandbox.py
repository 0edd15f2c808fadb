"""The template sandbox under hostile templates: each one ends quickly, as a node error.

A template that would hold the interpreter for minutes (huge powers, huge repetitions,
loops that print nothing) is refused by the sandbox's limits; one that reaches for Python
internals is refused by Jinja's sandbox. Both go through the real executor.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from nodeloom.core import Graph, NodeState
from nodeloom.executors import LocalExecutor

#: not a speed benchmark: a template the sandbox fails to stop runs for minutes, or forever
HANG_BOUND_SECONDS = 5.0

TOO_LARGE = "template operation too large"

#: (template, what the error says)
PAYLOADS = [
    ("{{ (7 ** 6000000) % 10 }}", TOO_LARGE),
    ("{{ 9 ** (9 ** 9) }}", TOO_LARGE),
    ("{{ 'a' * 200000000 }}", TOO_LARGE),
    ("{{ 'x' * 10**8 }}", TOO_LARGE),
    ("{{ [0] * 10**8 }}", TOO_LARGE),
    ("{{ 10**400 * 10**400 * 10**400 * 10**400 }}", TOO_LARGE),
    ("{{ range(10**9) | list }}", TOO_LARGE),
    ("{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx{% endfor %}{% endfor %}", TOO_LARGE),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", TOO_LARGE),
    ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}", TOO_LARGE),
    ("{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", TOO_LARGE),
    ("{{ 'a' | center(10**9) }}", TOO_LARGE),
    ("{{ '%0*d' | format(10**9, 1) }}", TOO_LARGE),
    ("{{ '{:>1000000000}'.format(1) }}", TOO_LARGE),
    ("{{ 'a'.ljust(10**9) }}", TOO_LARGE),
    ("{{ ('a' * 100000).replace('', 'b' * 100000) }}", TOO_LARGE),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "template error: access to attribute '__class__'"),
    ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", "template error: access to attribute '__init__'"),
    ("{{ self.__init__.__globals__ }}", "template error: access to attribute '__init__'"),
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", "template error: access to attribute '__globals__'"),
    ("{{ joiner.__init__.__globals__ }}", "template error: access to attribute '__init__'"),
    ("{{ namespace.__init__.__globals__ }}", "template error: access to attribute '__init__'"),
    ("{{ config.items() }}", "template error: 'config' is undefined"),
    ("{{ request.application.__globals__ }}", "template error: 'request' is undefined"),
]


def run_template(executor: LocalExecutor, template: str) -> tuple[dict[str, Any] | None, str | None, float]:
    g = Graph()
    g.output("text", g.add("text.template", "t", template=template)["text"])
    start = time.monotonic()
    result = executor.run(g)
    elapsed = time.monotonic() - start
    record = result.nodes["t"]
    if record.state is NodeState.FAILED:
        assert record.error is not None
        return dict(record.error), None, elapsed
    return None, result.outputs["text"], elapsed


@pytest.mark.parametrize(("template", "says"), PAYLOADS, ids=[p[0][:40] for p in PAYLOADS])
def test_hostile_template_fails_quickly_with_a_node_error(executor: LocalExecutor, template: str, says: str) -> None:
    error, text, elapsed = run_template(executor, template)
    assert error is not None, f"rendered {len(text or '')} characters instead of failing"
    assert error["message"].startswith(says), error
    assert elapsed < HANG_BOUND_SECONDS


def test_templates_within_the_limits_still_render(executor: LocalExecutor) -> None:
    template = (
        "{{ 2 ** 64 }} {{ 'ab' * 3 }} {{ 'x' ~ 1 }} {{ [1, 2] + [3] }} {{ '%05d' | format(42) }} "
        "{% for i in range(3) %}{{ loop.index }}{% endfor %} {{ '{:>4}'.format(7) }}"
    )
    error, text, _ = run_template(executor, template)
    assert error is None
    assert text == "18446744073709551616 ababab x1 [1, 2, 3] 00042 123    7"


def test_output_just_under_the_limit_renders(executor: LocalExecutor) -> None:
    from nodeloom.node_registry.text.nodes import MAX_TEMPLATE_OUTPUT

    error, text, _ = run_template(executor, f"{{{{ 'y' * {MAX_TEMPLATE_OUTPUT} }}}}")
    assert error is None and text is not None and len(text) == MAX_TEMPLATE_OUTPUT
    error, _, _ = run_template(executor, f"{{{{ 'y' * {MAX_TEMPLATE_OUTPUT} }}}}z")
    assert error is not None and error["message"].startswith(TOO_LARGE)
