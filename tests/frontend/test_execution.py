"""Which simulation path a spec takes (fedlang/execution.py), and what check, lowering and emit make of it."""

from __future__ import annotations

import pytest

from fedlang.diagnostics import Source, SpecError
from fedlang.pipeline import compile_source
from fedlang.summary import summary_lines

BASE = """\
seed 3
model m {
  input [64]
  dense 16 relu
%(layer)s  dense 10 softmax
  loss sparse_categorical_crossentropy
}
data digits {
  source sklearn.digits
  partition iid(clients = 50)
}
train %(algorithm)s {
  rounds 2   clients_per_round 10
  %(train)s
}
%(extra)s
"""


def compiled(layer="", algorithm="fedavg", train="", extra=""):
    text = BASE % {"layer": layer, "algorithm": algorithm, "train": train, "extra": extra}
    return compile_source(Source("t.fed", text))


def test_auto_takes_the_fused_path_and_check_says_so():
    c = compiled()
    assert c.plan.execution[0] == "fused" and c.plan.execution[1].startswith("auto")
    assert c.plan.process.func == "build_fused_process"
    assert {name: value for name, value, _ in c.plan.constants}["FUSED_GROUPS"] >= 1
    assert ("execution", "fused — " + c.plan.execution[1]) in summary_lines(c.checked, c.plan)
    assert "{<x=float32[?,64],y=int64[?],sizes=int64[?],seeds=int64[?],steps=int64[?]>*}@CLIENTS" in (
        c.plan.round_signature)
    program = c.program()
    assert "# Simulation path: fused" in program and "measure_update_norms" not in program


@pytest.mark.parametrize("algorithm, train, args", [
    ("fedavg", "weighting uniform", {"weighting": "uniform"}),
    ("fedprox", "mu 0.1", {"weighting": "examples"}),
    ("fedsgd", "", {"fedsgd": True}),
])
def test_every_algorithm_lowers_to_the_fused_process(algorithm, train, args):
    process = compiled(algorithm=algorithm, train=train).plan.process
    assert process.func == "build_fused_process"
    for key, value in args.items():
        assert dict(process.args)[key] == value
    if algorithm == "fedprox":
        assert dict(process.args)["client_optimizer_fn"].func == "ProximalOptimizer"


@pytest.mark.parametrize("kwargs, reason", [
    ({"train": "execution per_client"}, "`execution per_client`"),
    ({"layer": "  dropout 0.2\n"}, "dropout"),
    ({"extra": "privacy {\n  noise 1.0  clip 0.5  delta 1e-5\n}"}, "privacy block"),
    ({"extra": "aggregation { aggregator median }", "train": "weighting uniform"}, "aggregator 'median'"),
    ({"extra": "aggregation { compress quantize(bits = 8) }"}, "compression"),
    ({"extra": "aggregation { secure bounds(-1.0, 1.0) }", "train": "weighting uniform"}, "secure aggregation"),
    ({"extra": "attack { clients 1  scale 10 }"}, "attack block"),
])
def test_specs_that_need_per_client_values_fall_back_with_a_reason(kwargs, reason):
    c = compiled(**kwargs)
    path, why = c.plan.execution
    assert path == "per_client" and reason in why
    assert c.plan.process.func.startswith(("tff.learning.algorithms.", "build_attackable"))
    assert any(label == "execution" and text.startswith("per-client — ") and reason in text
               for label, text in summary_lines(c.checked, c.plan))
    assert "# Simulation path: per-client" in c.program()


def test_execution_fused_on_a_spec_that_cannot_fuse_is_E640():
    with pytest.raises(SpecError) as failure:
        compiled(layer="  dropout 0.2\n", train="execution fused")
    [diagnostic] = failure.value.diagnostics
    assert diagnostic.code == "E640" and "dropout" in diagnostic.message


def test_execution_fused_where_allowed_is_fused():
    assert compiled(train="execution fused").plan.execution == (
        "fused", "`execution fused`: the round's clients train back to back in one TFF client computation")
