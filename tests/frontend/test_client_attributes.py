"""Client attributes of a simulation block (fedlang/check/attributes.py, fedlang/lib/simulation.py):
declared shares drawn per client, a CSV column read per client as the run partitions it, and each
round's spread of the participants (counts, coverage, entropy) — against hand computations."""

import csv
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fedlang.check.monitor import round_metrics
from fedlang.diagnostics import Source, SpecError
from fedlang.lib import data as datalib
from fedlang.lib import simulation as sim
from fedlang.pipeline import compile_source

ROOT = Path(__file__).resolve().parents[2]
Z = 4.5
DEVICE = ("device", "categorical", ("phone", "tablet", "laptop"), (0.6, 0.3, 0.1))


def config(*attributes, seed=3):
    return {"available": ("always",), "seed": seed, "attributes": attributes}


def test_declared_shares_are_drawn_per_client_within_binomial_bounds():
    clients = np.arange(30_000)
    drawn = sim.client_attributes(config(DEVICE), clients)["device"]
    counts = np.bincount(drawn, minlength=3)
    for count, p in zip(counts, (0.6, 0.3, 0.1)):
        assert abs(count - len(clients) * p) <= Z * math.sqrt(len(clients) * p * (1 - p))
    # A client's device is its own: the same whichever clients are asked about, in any order.
    again = sim.client_attributes(config(DEVICE), clients[::-1][:500])["device"]
    assert np.array_equal(again, drawn[::-1][:500])
    other = sim.client_attributes(config(DEVICE, seed=4), clients)["device"]
    assert not np.array_equal(other, drawn)


def test_two_attributes_are_independent():
    region = ("region", "categorical", ("eu", "us"), (0.5, 0.5))
    drawn = sim.client_attributes(config(DEVICE, region), np.arange(20_000))
    assert abs(np.corrcoef(drawn["device"], drawn["region"])[0, 1]) < 0.03


def test_spread_counts_coverage_and_entropy_by_hand():
    column = ("clinic", "column", ("a", "b", "c", "d"), (0, 0, 1, 2, 2, 2))  # six clients: a a b c c c
    row = sim.participant_spread(config(column), [0, 2, 3, 4])  # a, b, c, c
    assert (row["clinic_a"], row["clinic_b"], row["clinic_c"], row["clinic_d"]) == (1, 1, 2, 0)
    assert row["clinic_coverage"] == 0.75  # three of the four clinics
    shares = np.array([1, 1, 2]) / 4
    assert row["clinic_entropy"] == pytest.approx(-(shares * np.log(shares)).sum() / math.log(4))
    even = sim.participant_spread(config(column), [0, 2, 3])
    assert even["clinic_entropy"] == pytest.approx(math.log(3) / math.log(4))
    alike = sim.participant_spread(config(column), [3, 4, 5])
    assert alike["clinic_entropy"] == 0.0 and alike["clinic_coverage"] == 0.25
    nobody = sim.participant_spread(config(column), [])
    assert nobody["clinic_coverage"] == 0.0 and nobody["clinic_entropy"] == 0.0


SPEC = """\
experiment "attributes"
seed 5
model m {
  input [64]
  dense 10 softmax
  loss sparse_categorical_crossentropy
  metrics [accuracy]
}
data digits {
  source sklearn.digits
  partition iid(clients = 60)
}
train fedavg { rounds 4  clients_per_round 10 }
simulation {
  available 0.5
%s
}
monitor {
  alert device_coverage < 1 -> warn
  alert region_entropy < 0.5 -> warn
  alert device_laptop < 1 -> warn
}
"""


def test_the_checker_types_attributes_and_the_monitor_knows_their_metrics():
    text = SPEC % "  attribute device(phone = 0.6, tablet = 0.3, laptop = 0.1)\n  attribute region(eu = 0.5, us = 0.5)"
    compiled = compile_source(Source("a.fed", text))
    attributes = compiled.checked.simulation.config["attributes"]
    assert attributes == (DEVICE, ("region", "categorical", ("eu", "us"), (0.5, 0.5)))
    metrics = round_metrics(compiled.checked)
    assert {"device_phone", "device_laptop", "device_coverage", "region_entropy"} <= set(metrics)
    assert "participant_spread(simulation, sampled)" in compiled.program_bytes().decode()


@pytest.mark.parametrize("line, message", [
    ("attribute device(phone = 0.5, tablet = 0.3)", "add up to 0.8, not 1"),
    ("attribute device(phone = 1.0)", "at least two values"),
    ("attribute device(phone = 0.5, phone = 0.5)", "lists 'phone' twice"),
    ("attribute device(0.5, 0.5)", "needs a share > 0"),
    ("attribute device", "NAME(value = share"),
    ("attribute train(loss = 0.5, x = 0.5)", "'train_loss', which the run already reports"),
    ("attribute d(x_coverage = 0.5, y = 0.5)\n  attribute d_x(a = 0.5, b = 0.5)", "attribute 'd' already reports"),
    ("attribute d(coverage = 0.5, y = 0.5)", "the attribute's own coverage"),
])
def test_attribute_mistakes_are_E630(line, message):
    with pytest.raises(SpecError) as info:
        compile_source(Source("a.fed", (SPEC % line).split("monitor {")[0]))
    codes = [d.code for d in info.value.diagnostics if d.severity == "error"]
    assert codes == ["E630"], info.value.diagnostics
    assert message in info.value.diagnostics[0].message


def test_a_csv_column_attribute_follows_the_runs_holdout_and_natural_partition():
    """Client k of the run (after the hold-out and natural partition) gets the clinic of its rows."""
    text = (ROOT / "examples" / "csv_natural.fed").read_text().replace(
        "evaluate {", 'simulation { attribute column("clinic") }\nevaluate {')
    compiled = compile_source(Source("clinics.fed", text), ROOT / "examples")
    name, kind, values, codes = compiled.checked.simulation.config["attributes"][0]
    assert (name, kind) == ("clinic", "column") and len(codes) == 6
    path = ROOT / "examples" / "data" / "clinics.csv"
    with open(path, newline="") as f:
        clinic_of_row = [row["clinic"] for row in csv.DictReader(f)]
    _, _, ids = datalib.load_csv(str(path), "triage", "clinic")
    train_rows, _ = datalib.holdout_split(len(ids), 0.25, np.random.default_rng(42))
    for k, part in enumerate(datalib.partition_natural(ids[train_rows])):
        assert Counter(clinic_of_row[i] for i in train_rows[part]) == {values[codes[k]]: len(part)}
    row = sim.participant_spread(compiled.checked.simulation.config, np.arange(6))
    assert row["clinic_coverage"] == 1.0 and row["clinic_entropy"] == pytest.approx(1.0)


def test_speed_and_bandwidth_follow_an_attribute_against_a_hand_computation():
    """Constant per device type: 20 examples, batch 10, one epoch; 1 MB down and up = 8 Mbit each.
    phone 0.05 s/ex at 2 Mbit/s: 1 + 8 = 9 s; laptop 0.01 s/ex at 16 Mbit/s: 0.2 + 1 = 1.2 s."""
    column = ("device", "column", ("phone", "laptop"), (0, 1, 0, 1))
    cfg = dict(config(column), speed=("attribute", "device", (0.05, 0.01)),
               bandwidth=("attribute", "device", (2.0, 16.0)), deadline=5.0, stragglers="drop", dropout=0.0,
               over_select=1.0, min_clients=1, straggler_fraction=0.0, max_steps=None, full_epochs_at=None)
    speed, mbits = sim.device_profiles(cfg, [0, 1, 2, 3])
    assert list(speed) == [0.05, 0.01, 0.05, 0.01] and list(mbits) == [2.0, 16.0, 2.0, 16.0]
    out = sim.simulate_round(np.random.default_rng(0), cfg, 1, np.full(4, 20), 4, 1, 10, 1_000_000, 1_000_000)
    assert list(out["clients"]) == [1, 3] and out["straggling"] == 2  # the phones miss the 5 s deadline
    assert out["seconds"] == 5.0
    no_deadline = sim.simulate_round(np.random.default_rng(0), dict(cfg, deadline=None), 1, np.full(4, 20), 4, 1, 10,
                                     1_000_000, 1_000_000)
    assert no_deadline["seconds"] == pytest.approx(9.0)


def test_a_speed_per_attribute_value_is_checked():
    text = SPEC.split("monitor {")[0].replace(
        "  available 0.5\n", "  available 0.5\n  speed device(phone = 0.05, tablet = 0.03, laptop = 0.01)\n"
                             "  deadline 1\n")
    compiled = compile_source(Source("a.fed", text % "  attribute device(phone = 0.6, tablet = 0.3, laptop = 0.1)"))
    assert compiled.checked.simulation.config["speed"] == ("attribute", "device", (0.05, 0.03, 0.01))
    for wrong, message in (("laptop = 0.01", "gives no speed for laptop"), ("tablet = 0.03", "not a value")):
        bad = text.replace(wrong, "lapto = 0.01" if "tablet" in wrong else "").replace(", )", ")")
        with pytest.raises(SpecError) as info:
            compile_source(Source("a.fed", bad % "  attribute device(phone = 0.6, tablet = 0.3, laptop = 0.1)"))
        assert [d.code for d in info.value.diagnostics if d.severity == "error"] == ["E632"]
        assert message in info.value.diagnostics[0].message
