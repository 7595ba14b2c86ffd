"""The monitor block's privacy-budget actions at check time (fedlang/check/budget.py): the round the
ε alert first holds, the smallest change that keeps the target (the next smaller one does not),
and the accounting of a mechanism that changes (fedlang/lib/privacy.py's epsilon_per_round_phases, fedlang/check/accounting.py's epsilon_after_phases)."""

import pytest

from fedlang.diagnostics import Source
from fedlang.check.accounting import epsilon_after_phases
from fedlang.lib import privacy as dp
from fedlang.pipeline import compile_source

SPEC = """\
seed 1
model m {
  input [64]
  dense 10 softmax
  loss sparse_categorical_crossentropy
}
data digits {
  source sklearn.digits
  partition iid(clients = 100)
}
train fedavg { rounds 30  clients_per_round 20 }
privacy {
  noise 1.0   clip 1.0   epsilon 8   delta 1e-5
  on_exceed stop
}
monitor {
  alert %s
}
"""


def _adjust(alert):
    checked = compile_source(Source("b.fed", SPEC % alert)).checked
    return checked.monitor.alerts[0]["adjust"]


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_one_phase_is_epsilon_per_round_and_phases_compose(accountant):
    assert dp.epsilon_per_round_phases([(6, 1.1, 0.1)], 1e-5, accountant) == \
        pytest.approx(dp.epsilon_per_round(6, 1.1, 0.1, 1e-5, accountant), rel=1e-9)
    two = dp.epsilon_per_round_phases([(3, 1.1, 0.1), (3, 2.0, 0.05)], 1e-5, accountant)
    assert two[:3] == pytest.approx(dp.epsilon_per_round(3, 1.1, 0.1, 1e-5, accountant), rel=1e-9)
    assert all(a < b for a, b in zip(two, two[1:]))
    assert two[-1] < dp.epsilon_after(6, 1.1, 0.1, 1e-5, accountant)  # the changed rounds cost less
    assert epsilon_after_phases([(3, 1.1, 0.1), (3, 2.0, 0.05)], 1e-5, accountant) == \
        pytest.approx(two[-1], rel=1e-6)


def test_raise_noise_is_the_smallest_noise_that_keeps_the_target():
    a = _adjust("epsilon > 0.5 of target -> raise_noise")
    epsilons = dp.epsilon_per_round(30, 1.0, 0.2, 1e-5)
    r = a["after_round"]
    assert epsilons[r - 1] > 4.0 >= epsilons[r - 2]  # the alert's first round
    z = a["noise_multiplier"]
    assert epsilon_after_phases([(r, 1.0, 0.2), (30 - r, z, 0.2)], 1e-5) == a["epsilon"] <= 8
    assert epsilon_after_phases([(r, 1.0, 0.2), (30 - r, round(z - 0.01, 2), 0.2)], 1e-5) > 8  # 3 figures
    assert a["clients_per_round"] == 20 and a["sampling_rate"] == 0.2


def test_lower_rate_is_the_most_clients_that_keep_the_target():
    a = _adjust("epsilon_remaining < 2 -> lower_rate")  # ε > 6
    epsilons = dp.epsilon_per_round(30, 1.0, 0.2, 1e-5)
    r, k = a["after_round"], a["clients_per_round"]
    assert epsilons[r - 1] > 6 >= epsilons[r - 2]
    assert a["sampling_rate"] == k / 100 and a["noise_multiplier"] == 1.0
    assert epsilon_after_phases([(r, 1.0, 0.2), (30 - r, 1.0, k / 100)], 1e-5) <= 8
    assert epsilon_after_phases([(r, 1.0, 0.2), (30 - r, 1.0, (k + 1) / 100)], 1e-5) > 8


def test_an_alert_that_never_fires_changes_nothing():
    never = compile_source(Source("b.fed", (SPEC % "epsilon > 0.5 of target -> raise_noise").replace(
        "rounds 30", "rounds 3"))).checked.monitor.alerts[0]["adjust"]
    assert not never["fires"] and never["noise_multiplier"] == 1.0
