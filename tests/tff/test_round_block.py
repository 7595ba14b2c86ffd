"""A round block whose aggregation is `mean` is FedAvg: the numbers must match TFF's own."""

import pytest

from fedlang.plan import PyCall

from .support import compile_text, load_program

pytestmark = [pytest.mark.tff, pytest.mark.slow]

SPEC = """
experiment "round-{name}"
seed 5
model m {{
  input [4]
  dense 8 relu
  dense 3 softmax
  loss sparse_categorical_crossentropy
  metrics [accuracy]
}}
data {{
  source sklearn.iris
  scale standard
  partition iid(clients = 6)
  test holdout(0.2)
}}
train fedavg {{
  rounds 3  clients_per_round 4  weighting uniform
  client_optimizer sgd(learning_rate = 0.1)
  execution per_client   # compared with TFF's own unweighted FedAvg, not the fused path
}}
evaluate {{ every 1 }}
{extra}
"""

ROUND = """
round {
  weights @CLIENTS = broadcast(model)
  update  @CLIENTS = local_train(weights, data)
  delta   @SERVER  = mean(update)
  model   @SERVER  = server_update(model, delta)
}
"""


def _rows(text, name):
    compiled = compile_text(text, name=f"{name}.fed")
    rows = []
    load_program(compiled)["train"](3, on_round=rows.append)
    return compiled, rows


def test_round_block_with_mean_is_unweighted_fedavg(tff_worker):
    plain, plain_rows = _rows(SPEC.format(name="plain", extra=""), "plain")
    steps, step_rows = _rows(SPEC.format(name="steps", extra=ROUND), "steps")
    assert plain.plan.process.func == "tff.learning.algorithms.build_unweighted_fed_avg"
    assert dict(steps.plan.process.args)["model_aggregator"] == PyCall("build_aggregator")
    for a, b in zip(plain_rows, step_rows):
        for key in ("train_loss", "train_accuracy", "eval_loss", "eval_accuracy"):
            assert b[key] == pytest.approx(a[key], abs=1e-5), (key, a["round"])
