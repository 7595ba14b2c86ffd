"""Which blocks a spec has: required ones present, none twice."""

from __future__ import annotations

from .. import ast
from ..diagnostics import Diagnostics, Span

_BLOCK_WORDS = {
    ast.Experiment: "experiment",
    ast.Seed: "seed",
    ast.ModelBlock: "model",
    ast.DataBlock: "data",
    ast.TrainBlock: "train",
    ast.EvaluateBlock: "evaluate",
    ast.PrivacyBlock: "privacy",
    ast.AggregationBlock: "aggregation",
    ast.AttackBlock: "attack",
    ast.AggregateBlock: "aggregate",
    ast.RoundBlock: "round",
}
REQUIRED_BLOCKS = ("model", "data", "train")

_EXAMPLES = {
    "model": "model mlp {\n  input [64]\n  dense 10 softmax\n  loss sparse_categorical_crossentropy\n}",
    "data": "data digits {\n  source sklearn.digits\n  partition iid(clients = 10)\n}",
    "train": "train fedavg {\n  rounds 10\n}",
}


def blocks_by_kind(spec: ast.Spec, diags: Diagnostics) -> dict[str, ast.Item]:
    """The one item of each kind; duplicates and missing required blocks are reported."""
    found: dict[str, ast.Item] = {}
    for item in spec.items:
        kind = _BLOCK_WORDS[type(item)]
        if kind == "aggregate":  # any number of named computations (fedlang/check/steps.py)
            continue
        if kind in found:
            first = found[kind].span.line
            diags.error("E302", f"a spec has one {kind} {'line' if kind in ('experiment', 'seed') else 'block'}",
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
