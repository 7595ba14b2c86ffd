"""Which blocks a spec has: required ones present, none twice."""

from __future__ import annotations

from .. import ast
from ..diagnostics import Diagnostics, Span
from ..registry import BLOCK_BY_KEYWORD, BLOCK_DEFS, REQUIRED_BLOCKS

_BLOCK_WORDS = {b.node: b.keyword for b in BLOCK_DEFS}
_EXAMPLES = {b.keyword: b.example for b in BLOCK_DEFS if b.required}


def blocks_by_kind(spec: ast.Spec, diags: Diagnostics) -> dict[str, ast.Item]:
    """The one item of each kind; duplicates and missing required blocks are reported."""
    found: dict[str, ast.Item] = {}
    for item in spec.items:
        kind = _BLOCK_WORDS[type(item)]
        if BLOCK_BY_KEYWORD[kind].many:  # any number of named computations (fedlang/check/steps.py)
            continue
        if kind in found:
            first = found[kind].span.line
            diags.error("E302", f"a spec has one {kind} {'line' if BLOCK_BY_KEYWORD[kind].line else 'block'}",
                        Span(item.span.line, item.span.column, item.span.line, item.span.column + len(kind)),
                        f"the first one is on line {first}")
            continue
        found[kind] = item
    if not spec.items:  # one error for an empty file, not one per missing block
        diags.error("E301", "the spec is empty: it needs model, data and train blocks", Span(1, 1, 1, 2),
                    "a spec declares `model <name> { … }`, `data { … }` and `train <algorithm> { … }`; "
                    "examples/quickstart.fed is a complete one")
        return found
    end = spec.items[-1].span
    where = Span(end.end_line, 1, end.end_line, 2)
    for kind in REQUIRED_BLOCKS:
        if kind not in found:
            example = _EXAMPLES[kind].replace("\n", " ⏎ ")
            diags.error("E301", f"missing {kind} block", where, f"add one, e.g. `{example}`")
    return found
