"""The round block is its own construct (checked.RoundConfig), not an aggregate named `round`:
no aggregate block can take its name, its steps may call the spec's aggregate blocks, and nothing
else may aggregate the updates beside it (secure aggregation, compression, an aggregator, DP)."""

import ast as pyast

import pytest

from fedlang.checked import AggregateConfig, RoundConfig
from fedlang.diagnostics import Source, SpecError
from fedlang.pipeline import compile_source

SPEC = """seed 5
model m {{
  input [4]
  dense 3 softmax
  loss sparse_categorical_crossentropy
}}
data {{
  source sklearn.iris
  partition iid(clients = 6)
}}
train fedavg {{
  rounds 2  clients_per_round 4  weighting uniform
}}
{extra}
round {{
  weights @CLIENTS = broadcast(model)
  update  @CLIENTS = local_train(weights, data)
  {middle}
  model   @SERVER  = server_update(model, delta)
}}
"""

CLIPPED = """aggregate clipped(u: float32[*] @CLIENTS) -> float32[*] @SERVER {
  c @CLIENTS = clip_norm(u, 1.0)
  return mean(c)
}"""


def _compile(middle="delta @SERVER = mean(update)", extra=""):
    return compile_source(Source("round.fed", SPEC.format(middle=middle, extra=extra)))


def _functions(program: str) -> dict[str, pyast.FunctionDef]:
    return {n.name: n for n in pyast.parse(program).body if isinstance(n, pyast.FunctionDef)}


def test_the_round_is_a_round_config_not_an_aggregate():
    checked = _compile().checked
    assert isinstance(checked.round, RoundConfig) and isinstance(checked.round.aggregate, AggregateConfig)
    assert checked.aggregates == {}  # only the spec's aggregate blocks
    assert checked.aggregation is None  # no aggregation block, and none made up for the round
    assert checked.step_aggregate is checked.round.aggregate
    assert [name for _, name, _ in checked.round.frame] == ["weights", "update", "model"]


def test_round_steps_may_call_an_aggregate_block():
    compiled = _compile("delta @SERVER = clipped(update)", extra=CLIPPED)
    checked = compiled.checked
    assert set(checked.aggregates) == {"clipped"} and checked.round.aggregate.helpers_called == ("clipped",)
    assert not [w for w in checked.warnings if w.code == "W901"]  # used by the round: not "never used"
    program = compiled.program()
    functions = _functions(program)
    # Two distinct functions; the round's calls the block's, never itself.
    assert {"aggregate_clipped", "aggregate_round", "build_aggregator"} <= set(functions)
    round_calls = {n.func.id for n in pyast.walk(functions["aggregate_round"])
                   if isinstance(n, pyast.Call) and isinstance(n.func, pyast.Name)}
    assert "aggregate_clipped" in round_calls and "aggregate_round" not in round_calls
    assert "steps_aggregation_factory(aggregate_round)" in pyast.unparse(functions["build_aggregator"])
    assert "clip_norm_fn" in functions  # the block's helpers are copied although only the round uses it


def test_secure_sum_in_the_round_runs_in_the_secure_context():
    compiled = _compile("delta @SERVER = secure_sum(update, lower = -1.0, upper = 1.0)")
    assert compiled.plan.secure_aggregation
    assert "with run, use_local_tff_worker(transform=simulate_secure_sums):" in compiled.program()


def test_an_aggregate_named_round_is_refused_at_its_name():
    with pytest.raises(SpecError) as raised:
        _compile(extra=CLIPPED.replace("aggregate clipped", "aggregate round"))
    (error,) = [d for d in raised.value.diagnostics if d.severity == "error"]
    assert error.code == "E910" and "keyword (the round block)" in error.message
    assert (error.span.line, error.span.column) == (14, 11)


@pytest.mark.parametrize("extra, what", [
    ("aggregation { secure bounds(-1.0, 1.0) }", "secure aggregation"),
    ("aggregation { compress quantize(8) }", "compression"),
    ("aggregation { compress topk(0.1) }", "compression"),
    ("aggregation { aggregator median }", "name an aggregator"),
    ("privacy { epsilon 10  delta 1e-5  clip 1.0  noise 1.0 }", "privacy block"),
])
def test_nothing_else_aggregates_beside_a_round(extra, what):
    """Before, secure aggregation replaced the round's steps and compression was silently dropped."""
    with pytest.raises(SpecError) as raised:
        _compile(extra=extra)
    (error,) = [d for d in raised.value.diagnostics if d.severity == "error"]
    assert error.code == "E914" and what in error.message
    assert error.span.line == 14 and error.hint


def test_aggregate_function_names_cannot_clash():
    """`aggregate_<name>` is a block's function: no copied helper and no other program global starts
    with `aggregate_`, and the round's `aggregate_round` is free because `round` is a keyword."""
    from fedlang.emit import LIB

    for path in LIB.glob("*.py"):
        tree = pyast.parse(path.read_text())
        names = {n.name for n in tree.body if isinstance(n, (pyast.FunctionDef, pyast.ClassDef))}
        assert not {n for n in names if n.startswith("aggregate_")}, path.name
    program = _compile("delta @SERVER = clipped(update)", extra=CLIPPED).program()
    defined = {n for n in _functions(program) if n.startswith("aggregate_")}
    assert defined == {"aggregate_clipped", "aggregate_round"}
