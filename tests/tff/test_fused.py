"""The fused path (fedlang/lib/fused.py) gives the per-client path's numbers, to float rounding.

Each case runs one spec twice, with `execution per_client` (TFF's own learning process) and
`execution fused`, and compares every number of every round's row (training metrics, update
norms, evaluation, simulated conditions, learning rates). The cases cover FedAvgM with a client
schedule and a simulation block (dropouts, partial stragglers: `take(steps)`), FedProx with
uniform weighting, client momentum and FedAdam, and FedSGD with FedYogi and a server schedule.
"""

from __future__ import annotations

import math

import pytest

from .support import compile_text, load_program

SPEC = """\
experiment "fused-{name}"
seed 11
model m {{
  input [64]
  dense 16 relu
  dense 10 softmax
  loss sparse_categorical_crossentropy
  metrics [accuracy]
}}
data digits {{
  source sklearn.digits
  scale minmax
  partition dirichlet(alpha = 0.5, clients = 40)
  test holdout(0.2)
  batch 8  shuffle 20
}}
train {algorithm} {{
  rounds 3   clients_per_round 12
  {settings}
  execution {execution}
}}
evaluate {{ every 3 }}
{extra}
"""

CASES = {
    "fedavgm-schedule-simulation": (
        "fedavg", "local_epochs 2  client_optimizer sgd(learning_rate = exponential_decay(0.1, 1, 0.5))\n"
                  "  server_optimizer sgd(learning_rate = 1.0, momentum = 0.9)",
        "simulation {\n  available 0.9  dropout 0.1  straggler_fraction 0.4  stragglers partial  max_steps 7\n}"),
    "fedprox-uniform-fedadam": (
        "fedprox", "mu 0.5  weighting uniform  client_optimizer sgd(learning_rate = 0.05, momentum = 0.5)\n"
                   "  server_optimizer adam(learning_rate = 0.01)", ""),
    "fedsgd-fedyogi-schedule": (
        "fedsgd", "server_optimizer yogi(learning_rate = warmup(0.05, 2))", ""),
}


def _rows(name: str, execution: str) -> tuple[list[dict], str]:
    algorithm, settings, extra = CASES[name]
    compiled = compile_text(SPEC.format(name=name, algorithm=algorithm, settings=settings, extra=extra,
                                        execution=execution))
    assert compiled.plan.execution[0] == execution
    rows: list[dict] = []
    load_program(compiled)["train"](on_round=rows.append)
    return rows, compiled.program()


@pytest.mark.parametrize("name", list(CASES))
def test_fused_path_gives_the_per_client_numbers(name, tff_worker):
    per_client, _ = _rows(name, "per_client")
    fused, program = _rows(name, "fused")
    assert "build_fused_process(" in program and "fused_round_data(" in program
    assert len(per_client) == len(fused) == 3
    for theirs, mine in zip(per_client, fused):
        assert set(mine) == set(theirs), (sorted(mine), sorted(theirs))
        for key, value in theirs.items():
            if key == "seconds":
                continue
            if isinstance(value, float):
                assert math.isfinite(mine[key])
                assert mine[key] == pytest.approx(value, rel=2e-5, abs=2e-6), (name, theirs["round"], key)
            else:
                assert mine[key] == value, (name, theirs["round"], key)
    assert fused[-1]["eval_accuracy"] > 0  # the model was evaluated after the last round
    if name.startswith("fedavgm"):  # the simulation block really cut clients' steps and dropped some
        assert any(r["straggling"] > 0 for r in fused) and any(r["dropped"] > 0 for r in fused)
