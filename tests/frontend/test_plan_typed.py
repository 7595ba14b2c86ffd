"""The Plan is the back end's only input, and it is typed: no checked spec inside, the data
pipeline and aggregate steps as call trees, references that are names and nothing else."""

import dataclasses

import pytest

from fedlang.emit.encode import EmitError, literal
from fedlang.pipeline import compile_file
from fedlang.plan import AggregateStep, DataSteps, Plan, PyAttr, PyCall, PyOp, PyRef

from ..conftest import REPO

GOLDEN = REPO / "tests" / "fixtures" / "golden"


def _walk(value):
    """Every node below a plan value (dataclasses, tuples, lists, dicts)."""
    yield value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _walk(getattr(value, f.name))
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _walk(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)


def test_the_plan_carries_no_checked_spec():
    assert "checked" not in {f.name for f in dataclasses.fields(Plan)}


@pytest.mark.parametrize("spec", sorted(GOLDEN.glob("*.fed")), ids=lambda p: p.stem)
def test_plan_references_are_plain_names(spec, in_repo):
    plan = compile_file(spec.relative_to(REPO)).plan
    refs = [v for v in _walk(plan) if isinstance(v, PyRef)]
    assert refs and all(all(part.isidentifier() for part in r.name.split(".")) for r in refs)
    assert isinstance(plan.data_steps, DataSteps) and isinstance(plan.data_steps.split, PyCall)


def test_aggregate_steps_are_call_trees(in_repo):
    plan = compile_file((GOLDEN / "aggregate_attack.fed").relative_to(REPO)).plan
    (aggregate,) = plan.aggregates
    steps = aggregate.steps
    assert all(isinstance(s, AggregateStep) for s in steps)
    assert [s.target for s in steps] == ["clipped", "all_", None]  # `all` would shadow the builtin
    assert [literal(s.value) for s in steps] == [
        "tff.federated_map(clip_norm_fn(dim, 1.0), update)", "gather(clipped, dim)",
        "tff.federated_map(trim_mean_fn(dim, 0.2), all_)"]
    assert [s.type for s in steps] == ["{float32[*]}@CLIENTS", "float32[?,*]@SERVER", "float32[*]@SERVER"]


def test_the_encoder_renders_call_trees_and_refuses_expressions_as_names():
    call = PyCall(PyCall.of("clipped_mean_steps", PyRef("dim"), 2.0), ((None, PyRef("update")),))
    assert literal(PyAttr(call, "result")) == "clipped_mean_steps(dim, 2.0)(update).result"
    assert literal(PyOp(PyRef("NOISE_MULTIPLIER"), "*", 0.5)) == "NOISE_MULTIPLIER * 0.5"
    for unsafe in (PyRef("float(CLIENTS_PER_ROUND)"), PyRef("x; import os"), PyOp(1, "**", 2),
                   PyAttr(call, "__class__.__bases__")):
        with pytest.raises(EmitError):
            literal(unsafe)
