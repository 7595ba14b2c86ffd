"""A monitor alert's privacy-budget actions (fedlang/check/budget.py, change_dp_mechanism in
fedlang/lib/monitor.py): after the round the ε alert fires, `raise_noise` runs the remaining rounds
with the larger noise standard deviation in the DP aggregator's state, `lower_rate` with fewer
clients (and the mean's denominator), and every row's ε is dp-accounting's for the changed
mechanism, ending within the target that the declared mechanism would pass."""

from __future__ import annotations

import numpy as np
import pytest

from fedlang.lib import privacy as dp

from .support import compile_text, load_program

pytestmark = [pytest.mark.tff]

SPEC = """\
experiment "tiny-budget"
seed 11
model linear {
  input   [64]
  dense   10 softmax
  loss    sparse_categorical_crossentropy
  metrics [accuracy]
}
data digits {
  source    sklearn.digits
  scale     minmax
  partition iid(clients = 20)
  batch 32
}
train fedavg {
  rounds 4   clients_per_round 8   local_epochs 1
  client_optimizer sgd(learning_rate = 0.3)
}
privacy {
  noise 0.8   clip 1.0   epsilon 6   delta 1e-3
  on_exceed stop
  seeded_noise true
}
monitor {
  alert epsilon > 0.75 of target -> %s
}
"""


def _run(action):
    """Train the tiny spec; returns (compiled, rows, alert events, the server state after each round)."""
    compiled = compile_text(SPEC % action)
    namespace = load_program(compiled)
    build, states = namespace["build_process"], []

    class Recording:
        def __init__(self, process):
            self._process = process

        def next(self, state, data):
            result = self._process.next(state, data)
            states.append(result.state)
            return result

        def __getattr__(self, name):
            return getattr(self._process, name)

    namespace["build_process"] = lambda: Recording(build())
    rows, events = [], []
    namespace["train"](on_round=rows.append, on_alert=events.append)
    return compiled, rows, events, states


def _dp_state(state):
    query = state.aggregator.query_state
    return float(query.numerator_state.stddev), float(query.denominator)


def test_raise_noise_after_the_alert_keeps_the_target(tff_worker):
    compiled, rows, events, states = _run("raise_noise")
    change = compiled.checked.monitor.alerts[0]["adjust"]
    assert change["after_round"] == 2 and change["noise_multiplier"] > 0.8
    assert dp.epsilon_per_round(4, 0.8, 0.4, 1e-3)[-1] > 6  # the declared mechanism would pass the target
    assert len(rows) == 4  # ... so without the change on_exceed stop would have ended the run early
    expected = dp.epsilon_per_round_phases([(2, 0.8, 0.4), (2, change["noise_multiplier"], 0.4)], 1e-3)
    assert [r["epsilon"] for r in rows] == expected and expected[-1] <= 6
    assert [r["epsilon"] for r in rows[:2]] == dp.epsilon_per_round(2, 0.8, 0.4, 1e-3)
    stddevs = [_dp_state(s)[0] for s in states]
    assert stddevs[:2] == pytest.approx([0.8] * 2) and stddevs[2:] == pytest.approx([change["noise_multiplier"]] * 2)
    assert [r["clients"] for r in rows] == [8] * 4
    assert [(e["round"], e["action"]) for e in events] == [(2, "raise_noise")]
    assert events[0]["change"] == {"noise_multiplier": change["noise_multiplier"], "clients_per_round": 8}


def test_lower_rate_samples_fewer_clients_after_the_alert(tff_worker):
    compiled, rows, events, states = _run("lower_rate")
    change = compiled.checked.monitor.alerts[0]["adjust"]
    k = change["clients_per_round"]
    assert change["after_round"] == 2 and k < 8
    assert [r["clients"] for r in rows] == [8, 8, k, k]
    assert [_dp_state(s)[1] for s in states] == [8, 8, k, k]  # the mean divides by the clients sampled
    expected = dp.epsilon_per_round_phases([(2, 0.8, 0.4), (2, 0.8, k / 20)], 1e-3)
    assert [r["epsilon"] for r in rows] == expected and expected[-1] <= 6
    assert np.isclose(_dp_state(states[-1])[0], 0.8)  # the noise is unchanged
    assert [(e["round"], e["action"]) for e in events] == [(2, "lower_rate")]
