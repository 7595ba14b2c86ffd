"""Tests for the privacy accounting library fedlang/lib/privacy.py (dp_accounting, no TF)."""

import ast
import inspect
import math
import subprocess
import sys

import dp_accounting
import pytest

from fedlang.emit import LIB, helper_source
from dp_accounting import pld, rdp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedlang.check import accounting
from fedlang.lib import privacy

MODULE_SOURCE = inspect.getsource(privacy)
PUBLIC = [
    "sampling_rate", "dp_event", "epsilon_after", "epsilon_per_round", "last_round_within",
    "epsilon_per_round_phases",
]

# (population, clients per round, noise multiplier, rounds, delta)
GRID = [
    (1000, 10, 1.0, 50, 1e-5),
    (1000, 100, 1.0, 100, 1e-5),
    (5000, 50, 0.8, 200, 1e-6),
    (200, 200, 5.0, 30, 1e-5),  # everyone every round: no sampling
    (100_000, 100, 1.5, 1000, 1e-7),
    (500, 50, 2.0, 20, 1e-3),
]


def direct_epsilon(population, clients, z, rounds, delta, accountant):
    """Epsilon from dp_accounting, written out independently of fedlang."""
    q = clients / population
    event = dp_accounting.GaussianDpEvent(noise_multiplier=z)
    if clients < population:
        event = dp_accounting.PoissonSampledDpEvent(sampling_probability=q, event=event)
    event = dp_accounting.SelfComposedDpEvent(event=event, count=rounds)
    if accountant == "rdp":
        acc = rdp.RdpAccountant()
    else:
        # The documented discretization: a tenth of q / z, at most 1e-3, unless one round's
        # largest privacy loss / 50,000 is coarser.
        x = 10 / z + 1 / (2 * z * z)
        largest = max(x + math.log(q), math.log(1 + q * (math.exp(min(x, 700)) - 1)))
        interval = max(min(1e-3, q / z / 10), largest / 5e4)
        acc = pld.PLDAccountant(value_discretization_interval=interval)
    acc.compose(event)
    return acc.get_epsilon(target_delta=delta)


def previous_grid_value(z):
    """The 3-significant-figure number just below z (z itself has 3 significant figures)."""
    exponent = math.floor(math.log10(z)) - 2
    digits = round(z / 10.0**exponent)
    if digits == 100:
        return float(f"999e{exponent - 1}")
    return float(f"{digits - 1}e{exponent}")


# ---------------------------------------------------------------------------------------------
# The module is copyable into generated programs
# ---------------------------------------------------------------------------------------------


def test_module_imports_only_stdlib_and_dp_accounting():
    tree = ast.parse(MODULE_SOURCE)
    imported = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            imported |= {(a.name, a.asname) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {(f"{node.module}.{a.name}", a.asname) for a in node.names}
    assert imported <= {
        ("math", None), ("numbers", None), ("dp_accounting", None),
        ("dp_accounting.pld", None), ("dp_accounting.rdp", None),
    }
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    inner = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert len(inner) == len(top_level)


def test_importing_the_module_does_not_import_tensorflow():
    code = (
        "import sys, fedlang.lib.privacy\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tensorflow_privacy', 'tensorflow_federated', 'jax'))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", PUBLIC)
def test_each_function_runs_when_copied_with_its_closure(name):
    snippet = helper_source(LIB / "privacy.py", [name])  # as the emitter copies it
    source = "\n".join(snippet.imports) + "\n\n" + snippet.source
    namespace = {}
    exec(compile(source, f"<emitted {name}>", "exec"), namespace)
    fn = namespace[name]
    q = 120 / 3383
    calls = {
        "sampling_rate": lambda f: f(120, 3383),
        "dp_event": lambda f: f(1.2, q, 100),
        "epsilon_after": lambda f: f(100, 1.2, q, 1e-5, "pld"),
        "epsilon_per_round": lambda f: f(5, 1.2, q, 1e-5, "pld"),
        "last_round_within": lambda f: f(1.0, 20, 1.2, q, 1e-5),
        "epsilon_per_round_phases": lambda f: f([(3, 1.2, q), (2, 2.0, q / 2)], 1e-5, "pld"),
    }
    assert calls[name](fn) == calls[name](getattr(privacy, name))


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
@pytest.mark.parametrize("population,clients,z,rounds,delta", GRID)
def test_epsilon_matches_dp_accounting_called_directly(population, clients, z, rounds, delta,
                                                       accountant):
    q = privacy.sampling_rate(clients, population)
    got = privacy.epsilon_after(rounds, z, q, delta, accountant)
    assert isinstance(got, float)
    assert got == pytest.approx(direct_epsilon(population, clients, z, rounds, delta, accountant),
                                rel=1e-12 if accountant == "rdp" else 1e-9)


def test_pld_is_tighter_than_rdp_on_the_grid_sample():
    population, clients, z, rounds, delta = GRID[1]
    q = clients / population
    assert privacy.epsilon_after(rounds, z, q, delta, "pld") < privacy.epsilon_after(
        rounds, z, q, delta, "rdp")


def test_tff_dp_tutorial_setting():
    # TFF's "Differential privacy in TFF" tutorial: 3383 clients, 120 per round, z = 1.2,
    # 100 rounds, delta = 1e-5, published epsilon 1.99. dp-accounting's default orders give
    # 1.9861; its PLD accountant 1.7075.
    q = privacy.sampling_rate(120, 3383)
    epsilon = privacy.epsilon_after(100, 1.2, q, 1e-5)
    assert round(epsilon, 2) == 1.99
    assert epsilon == pytest.approx(1.9861, abs=1e-4)
    assert privacy.epsilon_after(100, 1.2, q, 1e-5, "pld") == pytest.approx(1.7075, abs=1e-4)


def test_notes_setting_with_default_orders():
    # tff-0.87 notes: population 1000, 100 per round, z = 1, T = 100, delta = 1e-5.
    assert privacy.epsilon_after(100, 1.0, 0.1, 1e-5) == pytest.approx(7.8993, abs=1e-4)
    assert privacy.epsilon_after(100, 1.0, 0.1, 1e-5, "pld") == pytest.approx(7.047, abs=1e-3)


def test_custom_orders_are_used():
    # tensorflow-privacy 0.9.0's orders (see tests/tff/test_privacy_vs_tf_privacy.py).
    orders = ([1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5] + list(range(5, 64))
              + [128, 256, 512])
    epsilon = privacy.epsilon_after(100, 1.0, 0.1, 1e-5, orders=orders)
    assert epsilon == pytest.approx(7.9729, abs=1e-4)


def test_dp_event_structure():
    event = privacy.dp_event(1.2, 0.05, 7)
    assert event == dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(0.05, dp_accounting.GaussianDpEvent(1.2)), 7)
    assert privacy.dp_event(1.2, 1.0, 7) == dp_accounting.SelfComposedDpEvent(
        dp_accounting.GaussianDpEvent(1.2), 7)


def test_zero_rounds():
    assert privacy.epsilon_after(0, 1.0, 0.1, 1e-5) == 0.0
    assert privacy.epsilon_after(0, 1.0, 0.1, 1e-5, "pld") == 0.0
    assert privacy.epsilon_per_round(0, 1.0, 0.1, 1e-5) == []
    assert privacy.last_round_within(1.0, 0, 1.0, 0.1, 1e-5) == 0


def test_sampling_rate():
    assert privacy.sampling_rate(120, 3383) == 120 / 3383
    assert privacy.sampling_rate(10, 10) == 1.0


# ---------------------------------------------------------------------------------------------
# Per round, last round within a budget, solving for z
# ---------------------------------------------------------------------------------------------


def test_epsilon_per_round_rdp_equals_epsilon_after_exactly():
    q = 120 / 3383
    per_round = privacy.epsilon_per_round(150, 1.2, q, 1e-5)
    assert len(per_round) == 150
    for t in (1, 2, 17, 150):
        assert per_round[t - 1] == privacy.epsilon_after(t, 1.2, q, 1e-5)
    assert all(a < b for a, b in zip(per_round, per_round[1:]))


@pytest.mark.parametrize("q,rel", [(0.05, 1e-8), (1.0, 1e-4)])
def test_epsilon_per_round_pld_agrees_with_epsilon_after(q, rel):
    per_round = privacy.epsilon_per_round(20, 2.0, q, 1e-5, "pld")
    assert len(per_round) == 20
    for t in (1, 7, 20):
        assert per_round[t - 1] == pytest.approx(privacy.epsilon_after(t, 2.0, q, 1e-5, "pld"),
                                                 rel=rel)
    assert all(a <= b for a, b in zip(per_round, per_round[1:]))


def test_last_round_within_is_consistent_with_epsilon_per_round():
    q, z, rounds = 0.02, 1.0, 60
    per_round = privacy.epsilon_per_round(rounds, z, q, 1e-5)
    targets = [per_round[0] / 2, (per_round[40] + per_round[41]) / 2, per_round[-1]]
    for target, expected in zip(targets, [0, 41, rounds]):
        assert sum(1 for e in per_round if e <= target) == expected
        assert privacy.last_round_within(target, rounds, z, q, 1e-5) == expected, target


def test_last_round_within_pld():
    per_round = privacy.epsilon_per_round(30, 1.5, 0.02, 1e-5, "pld")
    target = (per_round[11] + per_round[12]) / 2
    assert privacy.last_round_within(target, 30, 1.5, 0.02, 1e-5, "pld") == 12


@pytest.mark.parametrize(
    "target,rounds,q,accountant",
    [
        (2.0, 100, 120 / 3383, "rdp"),  # the tutorial: z = 1.2 gives 1.986
        (10.0, 1000, 1.0, "rdp"),
        (0.5, 500, 0.01, "rdp"),
        (1.0, 200, 0.01, "pld"),
        (3.0, 50, 1.0, "pld"),
        # fractional RDP orders decide (the integer-order first guess is 30% too high)
        (500.0, 3000, 0.2, "rdp"),
        (10_000.0, 1000, 0.2, "rdp"),  # the search once stepped one grid value at a time here
        (50.0, 3000, 0.2, "pld"),  # started from a PLD 8 times coarser
    ],
)
def test_solve_noise_multiplier_is_the_smallest_3_significant_figure_z(target, rounds, q,
                                                                     accountant):
    z = accounting.solve_noise_multiplier(target, rounds, q, 1e-5, accountant)
    assert float(f"{z:.3g}") == z
    assert privacy.epsilon_after(rounds, z, q, 1e-5, accountant) <= target
    below = previous_grid_value(z)
    assert below < z * (1 - 9e-4)
    assert privacy.epsilon_after(rounds, below, q, 1e-5, accountant) > target


def test_solve_noise_multiplier_tutorial_value():
    assert accounting.solve_noise_multiplier(2.0, 100, 120 / 3383, 1e-5) == 1.2


@pytest.mark.parametrize("target, needs", [(10.0, None), (0.05, 100.0), (0.005, 1000.0)])
def test_solve_noise_multiplier_asks_for_large_z_only_when_needed(monkeypatch, target, needs):
    """RDP's series for fractional orders grew like z² in older dp-accounting (~1 s of CPU at z =
    1000); the search tried it first for every spec with `noise auto`. Now z = 10, then 100, then
    1000 are tried until one meets the target; the answer is the same grid value."""
    asked = []
    original = privacy._rdp_round

    def recorded(z, *args, **kwargs):
        asked.append(z)
        return original(z, *args, **kwargs)

    accounting.RDP_ROUNDS.clear()
    monkeypatch.setattr(privacy, "_rdp_round", recorded)
    z = accounting.solve_noise_multiplier(target, 25, 0.2, 1e-5, "rdp")
    assert max(asked) == (needs or 10.0)
    monkeypatch.setattr(privacy, "_rdp_round", original)
    assert privacy.epsilon_after(25, z, 0.2, 1e-5) <= target < privacy.epsilon_after(25, previous_grid_value(z), 0.2, 1e-5)


def test_solve_noise_multiplier_huge_target_gives_the_smallest_grid_value():
    assert accounting.solve_noise_multiplier(1e9, 1, 0.01, 1e-5) == 0.01


# ---------------------------------------------------------------------------------------------
# Monotonicity (RDP: fast enough for property tests)
# ---------------------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=6, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])
zs = st.floats(0.8, 4.0)
qs = st.floats(0.001, 0.1)
deltas = st.sampled_from([1e-3, 1e-5, 1e-7])


@PROPERTY_SETTINGS
@given(z=zs, q=qs, delta=deltas, t1=st.integers(1, 500), extra=st.integers(1, 500))
def test_epsilon_grows_with_rounds(z, q, delta, t1, extra):
    per_round = privacy.epsilon_per_round(t1 + extra, z, q, delta)
    assert per_round[t1 - 1] <= per_round[-1]
    assert per_round[-1] == privacy.epsilon_after(t1 + extra, z, q, delta)


@PROPERTY_SETTINGS
@given(z=zs, q=qs, factor=st.floats(1.05, 2.0), delta=deltas, rounds=st.integers(1, 300))
def test_epsilon_grows_with_sampling_rate(z, q, factor, delta, rounds):
    assert privacy.epsilon_after(rounds, z, q, delta) <= privacy.epsilon_after(
        rounds, z, min(1.0, q * factor), delta)


@PROPERTY_SETTINGS
@given(z=zs, factor=st.floats(1.05, 3.0), q=qs, delta=deltas, rounds=st.integers(1, 300))
def test_epsilon_falls_with_noise_multiplier(z, factor, q, delta, rounds):
    assert privacy.epsilon_after(rounds, z * factor, q, delta) <= privacy.epsilon_after(
        rounds, z, q, delta)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


P = privacy
INVALID = [
    (P.sampling_rate, (0, 100), "clients per round must be at least 1"),
    (P.sampling_rate, (120, 100),
     r"clients per round \(120\) cannot exceed the population \(100\)"),
    (P.sampling_rate, (1.5, 100), "clients per round must be a whole number"),
    (P.sampling_rate, (10, "100"), "population must be a whole number"),
    (P.epsilon_after, (10, 1.0, 0.1, 0.0), "delta must be a number strictly between 0 and 1"),
    (P.epsilon_after, (10, 1.0, 0.1, 1.0), "delta must be a number strictly between 0 and 1"),
    (P.epsilon_after, (10, 1.0, 1.5, 1e-5),
     r"sampling rate \(clients per round / population\) must be more than 0 and at most 1, "
     "got 1.5"),
    (P.epsilon_after, (10, 1.0, 0.0, 1e-5), "sampling rate .* must be more than 0"),
    (P.epsilon_after, (10, 0.0, 0.1, 1e-5), "noise multiplier must be a positive number, got 0.0"),
    (P.epsilon_after, (10, math.nan, 0.1, 1e-5), "noise multiplier must be a positive number"),
    (P.epsilon_after, (-1, 1.0, 0.1, 1e-5), "rounds cannot be negative"),
    (P.epsilon_after, (2.5, 1.0, 0.1, 1e-5), "rounds must be a whole number, got 2.5"),
    (P.epsilon_after, (10, 1.0, 0.1, 1e-5, "moments"),
     "accountant must be 'rdp' or 'pld', got 'moments'"),
    (lambda: P.epsilon_after(10, 1.0, 0.1, 1e-5, "pld", orders=[2, 3]), (),
     "orders can only be given with the 'rdp' accountant"),
    (P.dp_event, (-1.0, 0.1, 10), "noise multiplier must be a positive number"),
    (P.epsilon_per_round, (10, 1.0, 0.1, -1e-5), "delta must be a number strictly between"),
    (P.last_round_within, (0.0, 10, 1.0, 0.1, 1e-5), "target epsilon must be a positive number"),
    (accounting.solve_noise_multiplier, (0.0, 10, 0.1, 1e-5),
     "target epsilon must be a positive number, got 0.0"),
    (accounting.solve_noise_multiplier, (-1, 10, 0.1, 1e-5), "target epsilon must be a positive number"),
    (accounting.solve_noise_multiplier, (1.0, 10, 0.1, 2.0), "delta must be a number strictly between"),
    (accounting.solve_noise_multiplier, (1.0, 10, 1.1, 1e-5), "sampling rate .* at most 1"),
    (accounting.solve_noise_multiplier, (1.0, 0, 0.1, 1e-5), "rounds must be at least 1"),
    (accounting.solve_noise_multiplier, (1e-4, 1000, 1.0, 1e-5),
     "target epsilon 0.0001 is unreachable in 1000 rounds with sampling rate 1 and delta 1e-05: "
     "even noise multiplier 1000 gives epsilon 0.1.*Use fewer rounds"),
]


@pytest.mark.parametrize("function,args,message", INVALID)
def test_invalid_inputs_raise_clear_errors(function, args, message):
    with pytest.raises(ValueError, match=message):
        function(*args)


# ---------------------------------------------------------------------------------------------
# `noise auto`'s search (fedlang/check/accounting.py) against a brute-force one
# ---------------------------------------------------------------------------------------------


def brute_force_noise(target, rounds, q, delta, accountant):
    """The smallest 3-significant-figure z in 0.01 … 1000 with ε ≤ target: plain bisection over the
    grid with dp-accounting's ε (direct_epsilon), nothing of fedlang's search."""
    grid = [float(f"{n}e{k - 4}") for k in range(5) for n in range(100, 1000)] + [1000.0]
    population, clients = (1, 1) if q == 1 else (round(1 / q * 1000), 1000)

    def meets(z):
        return direct_epsilon(population, clients, z, rounds, delta, accountant) <= target

    if not meets(grid[-1]):
        return None
    low, high = -1, len(grid) - 1  # grid[low] fails (-1: below the grid), grid[high] meets
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if meets(grid[middle]) else (middle, high)
    return grid[high]


def seeded_table(seed, n):
    import random

    rng = random.Random(seed)
    for _ in range(n):
        yield (round(10 ** rng.uniform(-0.5, 3), 3), int(10 ** rng.uniform(0, 3.5)),
               1000 / round(1000 / 10 ** rng.uniform(-3.5, -0.05)), rng.choice([1e-3, 1e-5, 1e-7]))


@pytest.mark.parametrize("target,rounds,q,delta", list(seeded_table(8, 3)) + [(500.0, 3000, 0.2, 1e-5)])
def test_solve_agrees_with_brute_force_bisection_rdp(target, rounds, q, delta):
    try:
        z = accounting.solve_noise_multiplier(target, rounds, q, delta, "rdp")
    except ValueError:
        z = None
    assert z == brute_force_noise(target, rounds, q, delta, "rdp")


@pytest.mark.parametrize("target,rounds,q,delta", [(3.0, 20, 0.1, 1e-5)])
def test_solve_agrees_with_brute_force_bisection_pld(target, rounds, q, delta):
    assert accounting.solve_noise_multiplier(target, rounds, q, delta, "pld") == \
        brute_force_noise(target, rounds, q, delta, "pld")


@PROPERTY_SETTINGS
@given(z=st.floats(0.3, 20.0), q=st.floats(1e-4, 1.0), rounds=st.integers(1, 5000), delta=deltas)
def test_the_rdp_bound_is_never_below_the_accountants_epsilon(z, q, rounds, delta):
    """RdpBound (a few orders) is what `noise auto` searches with; only an upper bound is claimed,
    and the full accountant settles the answer. Per-order values are the accountant's own."""
    exact = privacy.epsilon_after(rounds, z, q, delta)
    bound = accounting.RdpBound(lambda x: [(rounds, x, q)], delta)
    assert bound(z) >= exact
    assert accounting.rdp_epsilon([(rounds, z, q)], delta) == exact
    orders = accounting.default_orders()
    full = rdp.RdpAccountant()
    full.compose(privacy.dp_event(z, q, 1))
    assert list(accounting.rdp_round(z, q, orders[5:9])) == list(full.rdp[5:9])


def test_rdp_epsilon_after_phases_is_the_accountants_composition():
    phases = [(7, 1.1, 0.1), (5, 2.0, 0.05)]
    direct = rdp.RdpAccountant()
    for rounds, z, q in phases:
        direct.compose(privacy.dp_event(z, q, rounds))
    assert accounting.epsilon_after_phases(phases, 1e-5) == direct.get_epsilon(1e-5)
