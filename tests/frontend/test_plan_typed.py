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


@pytest.mark.parametrize("spec", sorted(GOLDEN.glob("*.fed")), ids=lambda p: p.stem)
def test_the_holdout_is_one_typed_statement(spec, in_repo):
    """The central hold-out is a HoldOut statement: the program writes its call, and check's replay
    evaluates the same call (so the replayed client sizes are the run's)."""
    from fedlang.check.clients import evaluate
    from fedlang.constructs.partitions import holdout

    compiled = compile_file(spec.relative_to(REPO))
    data, steps = compiled.checked.data, compiled.plan.data_steps
    assert steps.holdout == holdout(data.test, steps.streamed)
    if steps.holdout is None:
        assert "holdout_split(" not in compiled.program().split("def load_data")[1].split("\ndef ")[0]
        return
    assert steps.holdout.per_file == steps.streamed and steps.test == "holdout"
    assert literal(steps.holdout.call) in compiled.program()
    import numpy as np

    train_idx, test_idx = evaluate(steps.holdout.call, {"y": np.zeros(100), "rng": np.random.default_rng(0)})
    assert len(test_idx) == round(steps.holdout.fraction * 100) and len(train_idx) + len(test_idx) == 100


def test_a_streamed_holdout_is_each_files_tail(tmp_path):
    from fedlang.diagnostics import Source
    from fedlang.pipeline import compile_source

    from ..files_support import write_clients
    from .test_files_source import SPEC

    write_clients(tmp_path / "silos", "csv", [30, 45, 12, 60])
    compiled = compile_source(Source("s.fed", SPEC.format(pattern="silos/*.csv", extra="test holdout(0.2)")), tmp_path)
    hold = compiled.plan.data_steps.holdout
    assert hold.per_file and hold.fraction == 0.2
    assert f"train_counts = {literal(hold.call)}" in compiled.program()
    assert compiled.checked.data.client_sizes == tuple(n - round(0.2 * n) for n in (30, 45, 12, 60))


def test_per_client_test_sets_are_one_statement(in_repo):
    """`test per_client(f)`: the program writes the client_tests call after the split, and check's
    replay evaluated the same call (its client_test_sizes)."""
    compiled = compile_file("examples/personalize_shards.fed")
    steps, data = compiled.plan.data_steps, compiled.checked.data
    assert steps.client_tests == PyCall.of("split_client_tests", PyRef("parts"), data.per_client_test, PyRef("rng"))
    assert f"parts, test_parts = {literal(steps.client_tests)}" in compiled.program()
    assert len(data.client_test_sizes) == data.num_clients and min(data.client_test_sizes) >= 1
    assert compile_file(GOLDEN.relative_to(REPO) / "mlp_dirichlet.fed").plan.data_steps.client_tests is None
