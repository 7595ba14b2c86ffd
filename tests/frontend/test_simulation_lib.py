"""fedlang/lib/simulation.py: the simulated conditions of a round (availability, selection,
dropout, deadline, stragglers, partial work), checked against binomial bounds, hand
computations and its own determinism. Pure NumPy: no TensorFlow here."""

import math
import time

import numpy as np
import pytest

from fedlang.emit import LIB, helper_source
from fedlang.lib import simulation as sim

Z = 4.5  # binomial bounds: |observed - expected| <= Z standard deviations (false alarm ~ 7e-6)


def config(**over):
    base = {"available": ("always",), "over_select": 1.0, "min_clients": 1, "dropout": 0.0, "speed": None,
            "bandwidth": None, "deadline": None, "stragglers": "drop", "straggler_fraction": 0.0,
            "max_steps": None, "full_epochs_at": None, "seed": 3}
    base.update(over)
    return base


def run_round(cfg, round_num=1, sizes=None, k=10, epochs=2, batch=10, down=4000, up=4000, seed=0):
    sizes = np.full(100, 50) if sizes is None else np.asarray(sizes)
    rng = np.random.default_rng([seed, round_num])
    return sim.simulate_round(rng, cfg, round_num, sizes, k, epochs, batch, down, up)


def within_binomial(successes, trials, p):
    sd = math.sqrt(trials * p * (1 - p))
    return abs(successes - trials * p) <= Z * sd + 1e-9


def test_availability_count_is_binomial_over_many_rounds():
    cfg, rounds, n = config(available=("probability", 0.3), over_select=1.0), 400, 1000
    total = sum(run_round(cfg, r, sizes=np.full(n, 5))["available"] for r in range(1, rounds + 1))
    assert within_binomial(total, n * rounds, 0.3)


def test_dropout_frequency_is_binomial_and_dropped_clients_send_nothing():
    cfg = config(dropout=0.05)
    selected = dropped = 0
    for r in range(1, 501):
        out = run_round(cfg, r, k=20)
        selected += out["selected"]
        dropped += out["dropped"]
        assert out["completed"] == out["selected"] - out["dropped"] == len(out["clients"])
    assert selected == 500 * 20
    assert within_binomial(dropped, selected, 0.05)


def test_selection_frequency_matches_the_selection_probability():
    """A client's chance of being picked (availability 0.3, ceil(1.3 * 8) = 11 of the available)
    is the probability the DP accountant uses."""
    cfg, n, rounds = config(available=("probability", 0.3), over_select=1.3), 40, 3000
    hits = np.zeros(n)
    for r in range(1, rounds + 1):
        rng = np.random.default_rng([1, r])
        out = sim.simulate_round(rng, dict(cfg, dropout=0.0), r, np.full(n, 5), 8, 1, 5, 0, 0)
        assert out["selected"] == min(11, out["available"])
        # completed are the first 8 of the selected; count selection through clients + surplus
        hits[out["clients"]] += 1
    q_kept = hits.sum() / (n * rounds)
    q = sim.selection_probability(n, 0.3, 11)
    assert q_kept <= q  # kept (at most 8) never exceeds selected (11)
    # the selected count itself: E[min(11, A)] / n with A ~ Binomial(40, 0.3) equals q
    draws = np.random.default_rng(0).binomial(n, 0.3, size=200_000)
    assert q == pytest.approx(np.minimum(11, draws).mean() / n, rel=0.01)


def test_daily_availability_follows_each_clients_sinusoid():
    n, period, rounds = 200, 24, 480
    cfg = config(available=("daily", 0.4, 0.3, period), over_select=1.0)
    counts = expected = 0.0
    for r in range(1, rounds + 1):
        counts += run_round(cfg, r, sizes=np.full(n, 5), k=1)["available"]
        expected += sim.daily_availability(n, r, 0.4, 0.3, period, 3).sum()
    assert abs(counts - expected) <= Z * math.sqrt(expected)
    p1, p7 = sim.daily_availability(n, 1, 0.4, 0.3, period, 3), sim.daily_availability(n, 7, 0.4, 0.3, period, 3)
    assert p1.min() >= 0.1 - 1e-12 and p1.max() <= 0.7 + 1e-12
    assert not np.allclose(p1, p7)  # the pattern moves over the day
    assert np.allclose(p1, sim.daily_availability(n, 1 + period, 0.4, 0.3, period, 3))  # and repeats daily


def test_trace_availability_selects_only_listed_clients(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("client,round\n" + "".join(f"{c},1\n" for c in (2, 5, 7)) + "4,2\n9,2\n")
    cfg = sim.prepare_simulation(config(available=("trace", str(path))))
    assert cfg["available"][2] == 2
    one, two, three = (run_round(cfg, r, sizes=np.full(10, 5), k=10) for r in (1, 2, 3))
    assert one["available"] == 3 and set(one["clients"]) == {2, 5, 7}
    assert set(two["clients"]) == {4, 9}
    assert set(three["clients"]) == {2, 5, 7}  # the trace repeats with its period
    path.write_text("who,when\n1,1\n")
    with pytest.raises(ValueError, match="client,round"):
        sim.prepare_simulation(config(available=("trace", str(path))))


def test_deadline_drop_and_partial_against_a_hand_computation():
    """Three clients, constant devices: 0.01 s/example, 8 Mbit/s (1 MB/s), 0.5 MB down and up
    (1 s of communication). Sizes 100, 300, 900 at batch 10 and 2 epochs: 200, 600, 1800
    examples = 2, 6, 18 s of work, so 3, 7 and 19 s in all. Deadline 10 s."""
    sizes = np.array([100, 300, 900])
    base = config(speed=("constant", 0.01), bandwidth=("constant", 8.0), deadline=10.0)
    drop = run_round(dict(base, stragglers="drop"), sizes=sizes, k=3, epochs=2, batch=10, down=500_000, up=500_000)
    assert list(drop["clients"]) == [0, 1] and list(drop["steps"]) == [20, 60]
    assert drop["straggling"] == 1 and drop["completed"] == 2
    assert drop["seconds"] == 10.0  # the server waited for the straggler until the deadline
    partial = run_round(dict(base, stragglers="partial"), sizes=sizes, k=3, epochs=2, batch=10,
                        down=500_000, up=500_000)
    # client 2 has 10 - 1 = 9 s for work: 900 examples = one epoch = 90 steps of 10.
    assert list(partial["clients"]) == [0, 1, 2] and list(partial["steps"]) == [20, 60, 90]
    assert partial["straggling"] == 1 and partial["seconds"] == 10.0
    no_deadline = run_round(dict(base, deadline=None), sizes=sizes, k=3, epochs=2, batch=10,
                            down=500_000, up=500_000)
    assert no_deadline["seconds"] == pytest.approx(19.0) and list(no_deadline["steps"]) == [20, 60, 180]


def test_partial_steps_count_the_short_last_batch():
    # 25 examples, batch 10: an epoch is 10 + 10 + 5. 3.4 s at 0.1 s/example = 34 examples:
    # one epoch (25) and then one batch of 10 would be 35 > 34, so 3 steps + 0 = 3 steps.
    assert sim.examples_in_steps(4, 25, 10) == 35
    assert sim.steps_within(34, 25, 10) == 3 and sim.steps_within(35, 25, 10) == 4
    steps = np.arange(0, 50)
    for size, batch in ((25, 10), (30, 10), (7, 3)):
        ex = sim.examples_in_steps(steps, size, batch)
        assert np.array_equal(sim.steps_within(ex, size, batch), steps)



def test_a_huge_deadline_is_no_cut_not_an_overflow():
    """Found by bench/fuzz.py (seed s16, case 70638): `deadline 1e40` made the examples within it
    overflow int64 (a RuntimeWarning on stderr and a garbage step count)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steps = sim.steps_within(np.array([1e40, np.inf, -1e40]), 25, 10)
    assert steps[0] == steps[1] > 10**14 and steps[2] == 0


def test_over_selection_keeps_the_first_to_finish():
    sizes = np.array([10, 20, 30, 40, 50, 60])  # constant speed: smaller clients finish first
    cfg = config(speed=("constant", 0.01), over_select=1.5)
    out = run_round(cfg, sizes=sizes, k=4, epochs=1, batch=10, down=0, up=0)
    assert out["selected"] == 6 and out["completed"] == 4 and out["surplus"] == 2
    assert list(out["clients"]) == [0, 1, 2, 3]
    assert out["seconds"] == pytest.approx(0.4)  # the fourth finisher: 40 examples


def test_a_round_below_min_clients_is_abandoned():
    cfg = config(dropout=0.5, min_clients=9)
    outs = [run_round(cfg, r, k=10) for r in range(1, 50)]
    assert all(o["abandoned"] == (o["completed"] < 9) for o in outs)
    assert any(o["abandoned"] for o in outs) and any(not o["abandoned"] for o in outs)


def test_fedprox_stragglers_run_uniform_epochs_or_are_dropped():
    partial = config(straggler_fraction=0.9, stragglers="partial")
    epochs_seen, straggling, selected = [], 0, 0
    for r in range(1, 301):
        out = run_round(partial, r, sizes=np.full(100, 100), k=10, epochs=20, batch=10)
        epochs_seen += list(out["steps"] // 10)
        straggling += out["straggling"]
        selected += out["selected"]
    assert within_binomial(straggling, selected, 0.9)
    counts = np.bincount(epochs_seen, minlength=21)[1:]
    assert counts.min() > 0  # every epoch count 1..20 occurs; 20 also for non-stragglers
    assert counts[:19].std() / counts[:19].mean() < 0.25
    drop = run_round(config(straggler_fraction=0.9, stragglers="drop"), 5, k=10, epochs=20)
    assert drop["completed"] == drop["selected"] - drop["straggling"]
    assert all(s == 20 * 5 for s in drop["steps"])  # survivors run all E epochs


def test_max_steps_and_size_dependent_epochs():
    sizes = np.array([10, 50, 100, 400])
    out = run_round(config(full_epochs_at=100, max_steps=30), sizes=sizes, k=4, epochs=4, batch=10)
    # epochs = clip(ceil(4 * n / 100), 1, 4) = 1, 2, 4, 4; steps = epochs * ceil(n / 10), capped at 30
    assert list(out["steps"]) == [1, 10, 30, 30]


def test_same_seed_same_conditions_other_seed_others():
    cfg = config(available=("probability", 0.3), over_select=1.3, dropout=0.1,
                 speed=("lognormal", 0.01, 0.8), bandwidth=("lognormal", 5.0, 0.5), deadline=4.0,
                 stragglers="partial")
    def signature(seed, device_seed):
        c = dict(cfg, seed=device_seed)
        return [(tuple(o["clients"]), tuple(o["steps"]), o["seconds"])
                for o in (run_round(c, r, k=10, seed=seed) for r in range(1, 6))]
    assert signature(0, 3) == signature(0, 3)
    assert signature(0, 3) != signature(1, 3)
    assert signature(0, 3) != signature(0, 4)  # other devices


def test_a_device_keeps_its_speed_across_rounds():
    cfg = config(speed=("lognormal", 0.01, 1.0), bandwidth=("uniform", 1.0, 10.0))
    s1, b1 = sim.device_profiles(cfg, [5, 77])
    s2, b2 = sim.device_profiles(cfg, [77, 5])
    assert np.array_equal(s1, s2[::-1]) and np.array_equal(b1, b2[::-1])
    assert 1.0 <= b1.min() and b1.max() <= 10.0


def test_device_draws_follow_the_declared_distributions():
    clients = np.arange(20_000)
    speed, mbits = sim.device_profiles(config(speed=("lognormal", 0.02, 0.7), bandwidth=("uniform", 2.0, 6.0)), clients)
    assert np.log(speed).mean() == pytest.approx(math.log(0.02), abs=Z * 0.7 / math.sqrt(len(clients)))
    assert np.log(speed).std() == pytest.approx(0.7, rel=0.03)
    assert mbits.min() >= 2.0 and mbits.max() <= 6.0 and mbits.mean() == pytest.approx(4.0, abs=0.05)
    assert abs(np.corrcoef(np.log(speed), mbits)[0, 1]) < 0.05  # speed and bandwidth are independent
    other, _ = sim.device_profiles(config(speed=("lognormal", 0.02, 0.7), seed=4), clients)
    assert abs(np.corrcoef(np.log(speed), np.log(other))[0, 1]) < 0.05  # another seed, other devices


def test_a_population_of_100000_costs_only_its_selected_clients(monkeypatch):
    """Devices are drawn for the selected clients only; nothing per client of the population."""
    drawn = []
    real = sim.device_profiles
    monkeypatch.setattr(sim, "device_profiles", lambda cfg, clients: drawn.append(len(clients)) or real(cfg, clients))
    cfg = config(available=("probability", 0.3), over_select=1.3, dropout=0.05,
                 speed=("lognormal", 0.01, 0.5), deadline=30.0)
    sizes = np.full(100_000, 20)
    started = time.perf_counter()
    for r in range(1, 21):
        out = run_round(cfg, r, sizes=sizes, k=100)
        assert out["selected"] == 130
    per_round = (time.perf_counter() - started) / 20
    assert drawn == [130] * 20
    assert per_round < 0.5, f"{per_round * 1000:.1f} ms per round"  # well under 1 ms on an idle core


def test_selection_probability_edges():
    assert sim.selection_probability(100, 1.0, 10) == pytest.approx(0.1)
    assert sim.selection_probability(100, 0.0, 10) == 0.0
    assert sim.selection_probability(1000, 0.3, 100) == pytest.approx(0.1, rel=1e-6)  # 300 available >> 100
    assert sim.selection_probability(1000, 0.05, 100) == pytest.approx(0.05, rel=1e-3)  # everyone available is picked


def test_copied_simulate_round_runs_on_its_own():
    snippet = helper_source(LIB / "simulation.py", ["simulate_round", "prepare_simulation"])
    namespace = {}
    exec(compile("\n".join(snippet.imports) + "\n\n" + snippet.source, "<emitted>", "exec"), namespace)
    rng = np.random.default_rng([0, 1])
    out = namespace["simulate_round"](rng, config(dropout=0.1), 1, np.full(30, 20), 10, 2, 10, 100, 100)
    assert out == {**out, "selected": 10}
