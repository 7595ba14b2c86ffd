"""ε of the declared run at check time, in a number of accountant calls that grows with log(rounds).

The run (fedlang/lib/privacy.py, copied into the emitted program) lists every round's ε and,
when the target is passed, finds the last round within it with `last_round_within`. Check
needs only ε after the last round, ε after the first, and that crossing round, so it asks for
ε at O(log rounds) round counts instead of once per round (rounds 1000000 with RDP took
minutes; PLD at 3000 rounds over 30 s). The values are the same ones the run computes:

* RDP: one round's RDP vector, scaled by t — exactly the items of `epsilon_per_round`.
* PLD: one round's privacy loss distribution (the same one `PLDAccountant` builds), self-composed
  t times and composed with the identity, as `PLDAccountant` does: `epsilon_after(t)` bit for bit
  (relative differences below 1e-9 to the run's round-by-round composition; with sampling rate 1
  the accountant folds the rounds into one Gaussian, and the values agree to ~1e-5).

ε(t) grows with t, so the crossing is a search over t: secant guesses on ε against t, falling
back to bisection, so a PLD search costs a handful of compositions.

A PLD composed over t rounds spans about t × (one round's mean privacy loss) + 12 standard
deviations, in steps of the discretization interval; composing costs ~0.4 µs of CPU per point.
With little noise for its sampling rate (noise 0.1 at q = 0.2 over 1000 rounds: 10⁷ points,
~6 s; ε ≈ 12,000) that is refused before composing (PLDTooCostly → E820), past MAX_PLD_POINTS.

`noise auto` (solve_noise_multiplier) is the smallest noise on a 3-significant-figure grid whose
dp-accounting ε meets the target. RDP: the accountant's ε is a minimum over 166 orders, and one
order's value costs up to ~15 ms (fractional orders below 2 at small noise), so the search runs on
RdpBound, the minimum over a few orders near the best one (an upper bound on the accountant's ε,
equal to it when the best order is found); the full accountant then decides at the answer and at
the grid value below it (smallest_rdp_noise). Every RDP value comes from rdp_round, which keeps
each order's value per (noise, q): the search, the accounting that follows and the budget actions
(fedlang/check/budget.py, the same grid search with epsilon_after_phases) share them. PLD: the
search starts from the RDP bound's answer, then a PLD 8 times coarser, then the exact one.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Sequence


MAX_PLD_POINTS = 2_000_000  # estimated points of the PLD composed over all rounds (~0.5 s of CPU)


class PLDTooCostly(Exception):
    """The PLD composed over the run's rounds would exceed MAX_PLD_POINTS."""

    def __init__(self, points: float, mean_loss: float, noise: float | None = None, solving: bool = False,
                 rdp_noise: float | None = None):
        super().__init__(f"~{points:.2g} points")
        self.points, self.mean_loss, self.noise, self.solving = points, mean_loss, noise, solving
        self.rdp_noise = rdp_noise  # `noise auto`: a noise with which the RDP accountant meets the target


class _Kept(dict):
    """A dict that forgets everything past 256 entries (the language server checks again and again)."""

    def __setitem__(self, key, value):
        if len(self) >= 256:
            self.clear()
        super().__setitem__(key, value)


# One round's RDP per (noise, sampling rate): {order: value}, filled one order at a time. Every RDP
# computation of check goes through rdp_round: `noise auto`'s search, the accounting that follows
# and the budget actions share these values.
RDP_ROUNDS: dict = _Kept()


@functools.lru_cache(maxsize=1)
def default_orders() -> tuple[float, ...]:
    """dp-accounting's default RDP orders (1.1, 1.2, …, 10.9, 11, 12, …, 63, 128, 256, 512, 1024)."""
    from dp_accounting import rdp

    return tuple(float(a) for a in rdp.RdpAccountant().orders)


@functools.lru_cache(maxsize=1)
def integer_orders() -> tuple[float, ...]:
    """The default orders that are whole numbers (2, 3, …, 63, 128, 256, 512, 1024): their series are
    short (~0.3 ms each), a fractional order's below 2 costs up to ~15 ms."""
    return tuple(a for a in default_orders() if a.is_integer())


def rdp_round(noise: float, q: float, orders: Sequence[float] | None = None):
    """One round's RDP at `orders` (default: all of dp-accounting's), as an array: RdpAccountant's
    values, computed for the orders not yet kept (dp-accounting computes each order on its own, so a
    value is the same whichever other orders are asked with it)."""
    import numpy as np

    from ..lib import privacy as dp

    orders = default_orders() if orders is None else orders
    kept = RDP_ROUNDS.get((noise, q))
    if kept is None:
        kept = RDP_ROUNDS[noise, q] = {}
    missing = [a for a in orders if a not in kept]
    if missing:
        kept.update(zip(missing, map(float, dp._rdp_round(noise, q, missing)[1])))
    return np.array([kept[a] for a in orders])


def rdp_epsilon(phases: Sequence[tuple[int, float, float]], delta: float,
                orders: Sequence[float] | None = None) -> float:
    """ε after the phases [(rounds, noise, q), …] run one after the other, from their summed RDP at
    `orders`: with the default orders, the RDP accountant's own ε (the arithmetic of
    `epsilon_after_phases`); with fewer, an upper bound on it (ε is a minimum over the orders)."""
    from ..lib import privacy as dp

    orders = default_orders() if orders is None else orders
    total = 0
    for rounds, noise, q in phases:
        total = rounds * rdp_round(noise, q, orders) + total
    return dp._rdp_epsilon(orders, total, delta)


class RdpBound:
    """An upper bound on the RDP accountant's ε of phases_of(x) (phases that depend on one parameter,
    the noise or the clients), at a few of its orders: ε is the minimum over the orders of a function
    with, for these mechanisms, a single valley, so a walk from the last call's best order to the
    lowest one near it finds the accountant's minimum at ~4 orders instead of 166. `whole`: walk the
    integer orders only (their series is short: ~0.3 ms each; a fractional order below 2 costs ~10
    ms), a larger bound. Only the bound is claimed: answers found with it are settled by the
    accountant (smallest_rdp_noise)."""

    def __init__(self, phases_of: Callable[[float], list], delta: float, whole: bool = False,
                 start: float = 2.0):
        self.orders = integer_orders() if whole else default_orders()
        self.phases_of, self.delta = phases_of, delta
        self.best = min(range(len(self.orders)), key=lambda i: abs(self.orders[i] - start))

    def __call__(self, x: float) -> float:
        orders, phases, values = self.orders, self.phases_of(x), {}

        def at(i: int) -> float:
            if i not in values:
                values[i] = rdp_epsilon(phases, self.delta, orders[i:i + 1])
            return values[i]

        i, moved = self.best, True
        while moved:  # until neither neighbour is lower
            moved = False
            for direction in (1, -1):
                step = 1
                while True:
                    j = i + direction * step
                    if 0 <= j < len(orders) and at(j) < at(i):
                        i, step, moved = j, 2 * step, True
                    elif step > 1:
                        step = 1
                    else:
                        break
        self.best = i
        return at(i)

    @property
    def best_order(self) -> float:
        return self.orders[self.best]


def epsilon_after_phases(phases: Sequence[tuple[int, float, float]], delta: float, accountant: str = "rdp") -> float:
    """ε after the phases [(rounds, noise, q), …] run one after the other (the last item of
    fedlang/lib/privacy.py's epsilon_per_round_phases, in a few accountant calls): RDP, each phase's
    one-round RDP scaled by its rounds and summed (rdp_epsilon); PLD, each phase's one-round
    distribution on the phases' coarsest interval self-composed over its rounds (kept: a budget
    action's first phase is the same for every candidate), then composed."""
    from ..lib import privacy as dp

    phases, delta, accountant, interval = dp._checked_phases(phases, delta, accountant)
    if not phases:
        return 0.0
    if accountant == "rdp":
        return rdp_epsilon(phases, delta)
    composed = None
    for rounds, noise, q in phases:
        phase = _pld_phase(noise, q, interval, rounds)
        composed = phase if composed is None else composed.compose(phase)
    return float(composed.get_epsilon_for_delta(delta))


@functools.lru_cache(maxsize=8)
def _pld_phase(noise: float, q: float, interval: float, rounds: int):
    """One round's privacy loss distribution at `interval`, self-composed over `rounds`."""
    one_round = pld_round(noise, q, interval)
    return one_round if rounds == 1 else one_round.self_compose(rounds)


@functools.lru_cache(maxsize=8)
def pld_round(noise: float, q: float, interval: float | None = None):
    """fedlang/lib/privacy.py's one-round privacy loss distribution (default interval: its own),
    kept: building it costs ~10 µs of CPU per point (~0.1 s at noise 1, q 0.2)."""
    from ..lib import privacy as dp

    return dp._pld_round(noise, q, dp._pld_discretization(noise, q) if interval is None else interval)


# ------------------------------------------------------------------ `noise auto`

# The grid of `noise auto`: index i = 0..4500 <-> z = n * 10**(k - 2), n = 100..999 the 3
# significant digits, k = 0..5 (z = 0.0100 … 1000).
GRID_TOP = 4500


def grid_noise(i: int) -> float:
    k, n = divmod(i, 900)
    return float(f"{100 + n}e{k - 4}")


def grid_index(z: float) -> float:
    """Where z falls on the grid (fractional between grid values)."""
    k = math.floor(math.log10(z))
    return 900 * (k + 2) + (z / 10.0 ** (k - 2) - 100)


def smallest_on_grid(epsilon_of: Callable[[float], float], target: float, high: int, high_epsilon: float,
                     low: int = -1, guess: float = 1.0, trace: list | None = None) -> int:
    """The smallest grid index whose noise has ε ≤ target, given that `high`'s does (with ε
    `high_epsilon`) and `low`'s does not (-1: below the grid); ε falls as the noise grows.

    Secant steps on log ε against log z through the last two points; after two steps that did not
    halve the bracket (or without a secant), bisection, or while nothing below the answer is known,
    steps down of 1, 4, 16, … grid values (bisection would try z near 0.01, where the accountants
    are slowest). `trace` collects the (z, ε) tried."""
    below_known = low >= 0
    points = [(grid_noise(high), high_epsilon)] if trace is None else trace
    if trace is not None:
        trace.append((grid_noise(high), high_epsilon))
    guess_index, slow_steps = grid_index(guess), 0
    while high - low > 1:
        i = min(max(round(guess_index), low + 1), high - 1)
        z = grid_noise(i)
        epsilon = epsilon_of(z)
        width = high - low
        if epsilon <= target:
            high = i
        else:
            low, below_known = i, True
        points.append((z, epsilon))
        slow_steps = slow_steps + 1 if high - low > width / 2 else 0
        secant = _secant(points[-2], points[-1], target)
        if secant is not None and slow_steps < 2:
            guess_index = grid_index(secant)
        elif not below_known:
            guess_index = high - 4 ** slow_steps
        else:
            guess_index = (low + high) / 2
    return high


def _secant(point1: tuple[float, float], point2: tuple[float, float], target: float) -> float | None:
    """Where the line through two (z, ε) points on log ε against log z reaches the target (within
    0.01 … 1000), None if it does not fall."""
    (z1, e1), (z2, e2) = point1, point2
    if not (0 < e1 < math.inf and 0 < e2 < math.inf and z1 != z2):
        return None
    slope = (math.log(e2) - math.log(e1)) / (math.log(z2) - math.log(z1))
    if not slope < 0:
        return None
    log_z = math.log(z2) + (math.log(target) - math.log(e2)) / slope
    return math.exp(min(max(log_z, math.log(0.01)), math.log(1000.0)))


def rdp_bound_answer(phases_of: Callable[[float], list], delta: float, target: float,
                     low: int = -1, whole: bool = False) -> int | None:
    """The smallest grid index above `low` whose noise z meets the target by RdpBound of phases_of(z)
    (None: not even 1000). The RDP accountant's answer is at or below it (its ε is at most the bound),
    and PLD's too. First on the integer orders alone (cheap; from z = 10, 100, 1000, larger noise
    costing more), then on all orders from there, its first guess where the integer orders' slope
    of log ε against log z meets the target. `whole`: the answer at the integer orders alone."""
    integer = RdpBound(phases_of, delta, whole=True)
    start = next(((i, e) for i in (2700, 3600, GRID_TOP) if i > low and (e := integer(grid_noise(i))) <= target), None)
    if start is None:
        return None
    trace: list = []
    answer = smallest_on_grid(integer, target, *start, low, trace=trace)
    if whole:
        return answer
    bound = RdpBound(phases_of, delta, start=integer.best_order)
    z, epsilon = grid_noise(answer), bound(grid_noise(answer))
    guess, failed = z, [point for point in trace if point[1] > target]
    if failed and 0 < epsilon:  # the integer orders' slope, through the bound's value at their answer
        (z1, e1), e2 = max(failed), min(e for zz, e in trace if zz == z)
        if 0 < e1 < math.inf and 0 < e2 < math.inf:
            slope = (math.log(e2) - math.log(e1)) / (math.log(z) - math.log(z1))
            if slope < 0:
                guess = min(max(z * math.exp((math.log(target) - math.log(epsilon)) / slope), 0.01), 1000.0)
    return smallest_on_grid(bound, target, answer, epsilon, low, guess)


def smallest_rdp_noise(phases_of: Callable[[float], list], delta: float, target: float,
                       low: int = -1) -> int | None:
    """The smallest grid index above `low` (whose noise does not meet the target) whose noise z meets
    the target by the RDP accountant's own ε of phases_of(z); None if even 1000 does not. The search
    runs on RdpBound (rdp_bound_answer); the accountant then decides at the answer and at the grid
    value below it (2 full evaluations, ~0.1 s each), searching on only if the bound missed."""
    exact = lambda z: rdp_epsilon(phases_of(z), delta)  # noqa: E731
    answer = rdp_bound_answer(phases_of, delta, target, low)
    if answer is None:  # the bound passes the target even at 1000: the accountant decides there
        if (top := exact(1000.0)) > target:
            return None
        answer = smallest_on_grid(exact, target, GRID_TOP, top, low)
    while answer - 1 > low and (below := exact(grid_noise(answer - 1))) <= target:
        answer = smallest_on_grid(exact, target, answer - 1, below, low, grid_noise(answer - 1))
    if exact(grid_noise(answer)) > target:  # never expected: the bound is at least the accountant's ε
        raise ArithmeticError(f"the RDP accountant gives ε {exact(grid_noise(answer))} > {target} at noise "
                              f"{grid_noise(answer)}, where its bound at a few orders met the target")
    return answer


def solve_noise_multiplier(target: float, rounds: int, q: float, delta: float, accountant: str = "rdp") -> float:
    """`noise auto`: the smallest noise multiplier on the grid 0.0100, 0.0101, …, 9.99, 10.0, 10.1, …,
    1000 (3 significant figures) whose ε by the accountant after `rounds` rounds meets the target; so
    the answer always meets it and the grid value below it does not. ValueError if even 1000 does not
    (a message saying so), or for invalid inputs.

    RDP: the search runs on RdpBound (an upper bound on the accountant's ε at a few orders); the full
    accountant settles the answer and the value below (smallest_rdp_noise). PLD: from the answer of RDP at
    its integer orders (PLD's ε is smaller: the answer is at or below it), a PLD 8 times coarser, then the
    exact one (through epsilon_function: the accounting that follows reuses it)."""
    from ..lib import privacy as dp

    rounds, _, q, delta, accountant = dp._check_inputs(rounds, 1.0, q, delta, accountant)
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not 0 < target < math.inf:
        raise ValueError(f"the target epsilon must be a positive number, got {target!r}")
    if rounds == 0:
        raise ValueError("the number of rounds must be at least 1 to choose a noise multiplier")

    def unreachable(epsilon: float) -> ValueError:
        return ValueError(
            f"target epsilon {target} is unreachable in {rounds} rounds with sampling rate {q:.4g} and "
            f"delta {delta:g}: even noise multiplier 1000 gives epsilon {epsilon:.4g}. Use fewer rounds "
            "or fewer clients per round, or a larger target.")

    if accountant == "rdp":
        answer = smallest_rdp_noise(lambda z: [(rounds, z, q)], delta, target)
        if answer is None:
            raise unreachable(rdp_epsilon([(rounds, 1000.0, q)], delta))
        return grid_noise(answer)
    bound_answer = _bound_answer(target, rounds, q, delta, whole=True)  # the first guess: RDP at the integer orders

    def pld_epsilon(z: float, coarser: int = 1) -> float:
        if coarser == 1 and q < 1:  # the accountant's ε, with the one-round PLD kept for the accounting that follows
            return epsilon_function(z, q, delta, "pld")(rounds)
        accountant = dp.pld.PLDAccountant(value_discretization_interval=coarser * dp._pld_discretization(z, q))
        accountant.compose(dp.dp_event(z, q, rounds))
        return float(accountant.get_epsilon(delta))

    def top(epsilon_of: Callable[[float], float]) -> tuple[int | None, float]:
        """(grid index, ε) of z = 10, 100 or 1000, the first meeting the target (None: not even 1000)."""
        for i in (2700, 3600, GRID_TOP):
            if (epsilon := epsilon_of(grid_noise(i))) <= target:
                return i, epsilon
        return None, epsilon

    start = top(pld_epsilon)
    if start[0] is None:
        raise unreachable(start[1])
    guess = 1.0 if bound_answer is None else grid_noise(bound_answer)
    coarse = lambda z: pld_epsilon(z, 8)  # noqa: E731
    if (coarse_start := top(coarse))[0] is not None:  # its answer (its ε a little larger) starts the search
        guess = grid_noise(smallest_on_grid(coarse, target, *coarse_start, guess=guess))
    return grid_noise(smallest_on_grid(pld_epsilon, target, *start, guess=guess))


@functools.lru_cache(maxsize=16)
def _bound_answer(target: float, rounds: int, q: float, delta: float, whole: bool = False) -> int | None:
    """rdp_bound_answer of `rounds` rounds at sampling rate q."""
    return rdp_bound_answer(lambda z: [(rounds, z, q)], delta, target, whole=whole)


def check_pld_solvable(target: float, rounds: int, q: float, delta: float) -> None:
    """Raise PLDTooCostly if `noise auto` with PLD would compose past the limit.

    The PLD answer is at or below the answer of RDP at its integer orders alone (PLD's ε is smaller
    than RDP's, and that bound's larger still); the search may try noise down to about half of it, so
    the composition is estimated there (noise auto with ε = 10,000 over 1000 rounds at q = 0.2 took 8.5 s of CPU)."""
    answer = _bound_answer(target, rounds, q, delta, whole=True)
    if answer is None:
        return  # PLD may still meet it (its search tries 10, 100, 1000); else E813 says so
    low = max(grid_noise(answer) / 2, 0.01)
    one_round = _one_round_points(low, q)
    if one_round > MAX_PLD_SOLVE_POINTS:  # each candidate noise builds its own one-round PLD
        raise PLDTooCostly(one_round, float("nan"), low, solving=True, rdp_noise=_rdp_noise(target, rounds, q, delta))
    points, mean_loss = epsilon_function(low, q, delta, "pld").points(rounds)  # type: ignore[attr-defined]
    if points > MAX_PLD_POINTS:
        raise PLDTooCostly(points, mean_loss, low, rdp_noise=_rdp_noise(target, rounds, q, delta))


def _rdp_noise(target: float, rounds: int, q: float, delta: float) -> float | None:
    """For E820's message: a noise with which the RDP accountant meets the target, RdpBound's answer
    (the accountant's own is at most that: its ε is at most the bound; no full evaluation)."""
    answer = _bound_answer(target, rounds, q, delta)
    return None if answer is None else grid_noise(answer)


# The search for `noise auto` builds a one-round PLD per candidate noise (~8 of them, ~10 µs of
# CPU per point): past this size at half the RDP answer it is refused (E820), ~1.6 s at the cap.
MAX_PLD_SOLVE_POINTS = 20_000


def _one_round_points(noise: float, q: float) -> float:
    """Points of one round's PLD as fedlang/lib/privacy.py discretizes it (without building it)."""
    from ..lib import privacy as dp

    x = 10 / noise + 0.5 / noise**2
    largest_loss = max(x + math.log(q), math.log1p(q * math.expm1(min(x, 700))))
    return largest_loss / dp._pld_discretization(noise, q)


@dataclass(frozen=True)
class Accounted:
    epsilon: float  # after the declared rounds
    first: float  # after one round
    last_within: int | None  # last round with ε ≤ target (None: no target)


@functools.lru_cache(maxsize=8)
def epsilon_function(noise: float, q: float, delta: float, accountant: str) -> Callable[[int], float]:
    """ε after t rounds, as the run computes it; each call is one accountant evaluation (the PLD's
    are remembered, and so is the function: the privacy pass and a budget action share them)."""
    from ..lib import privacy as dp

    if accountant == "rdp":
        per_round, orders = rdp_round(noise, q), default_orders()
        return lambda t: dp._rdp_epsilon(orders, t * per_round, delta)
    one_round = pld_round(noise, q)
    cache: dict[int, float] = {}
    interval = dp._pld_discretization(noise, q)
    spread = [_loss_moments(pmf, interval) for pmf in (one_round._pmf_remove, one_round._pmf_add)
              if pmf is not None]

    def points(t: int) -> tuple[float, float]:
        """(estimated points of the t-round PLD, one round's mean loss): the wider of its two PMFs."""
        return max(((t * mean + 12 * math.sqrt(t * var)) / interval, mean) for mean, var in spread)

    def pld_epsilon(t: int) -> float:
        if t not in cache:
            if q < 1:  # PLDAccountant's own steps (an identity composed with the t-fold one): its ε, bit for bit
                composed = dp.pld.privacy_loss_distribution.identity(interval).compose(one_round.self_compose(t))
            else:  # the accountant folds t rounds into one Gaussian; this agrees to ~1e-5 (epsilon_per_round)
                composed = one_round if t == 1 else one_round.self_compose(t)
            cache[t] = float(composed.get_epsilon_for_delta(delta))
        return cache[t]

    def guide(t: int) -> float:
        """RDP's ε at the integer orders after t rounds (microseconds), for last_round_within's guesses."""
        return dp._rdp_epsilon(integer_orders(), t * rdp_round(noise, q, integer_orders()), delta)

    pld_epsilon.points, pld_epsilon.guide = points, guide  # type: ignore[attr-defined]
    return pld_epsilon


def _loss_moments(pmf, interval: float) -> tuple[float, float]:
    """(mean, variance) of the finite privacy losses of a dp_accounting PLD PMF."""
    import numpy as np

    if hasattr(pmf, "_probs"):  # DensePLDPmf: probabilities of losses lower_loss, lower_loss + 1, … (× interval)
        probs = np.asarray(pmf._probs, dtype=float)
        losses = (pmf._lower_loss + np.arange(len(probs))) * interval
    else:  # SparsePLDPmf: {loss index: probability}
        losses = np.array(list(pmf._loss_probs), dtype=float) * interval
        probs = np.array(list(pmf._loss_probs.values()), dtype=float)
    total = probs.sum()
    if not total > 0:
        return 0.0, 0.0
    mean = float((probs * losses).sum() / total)
    return mean, float((probs * (losses - mean) ** 2).sum() / total)


def last_round_within(epsilon_of: Callable[[int], float], rounds: int, target: float,
                      known: dict[int, float]) -> int:
    """The largest t ≤ rounds with ε(t) ≤ target (0 if none); ε grows with t.

    `known` holds ε at some round counts already computed (e.g. 1 and `rounds`). A PLD's ε
    (epsilon_function) has a `guide`, RDP's ε at the integer orders (microseconds per t): the
    guesses then assume ε / guide varies linearly in log t between the bracket's ends, which puts
    them within a round or two of the crossing (3000 rounds: 13 PLD compositions before, ~3 now).
    """
    guide = getattr(epsilon_of, "guide", None)

    def eps(t: int) -> float:
        if t not in known:
            known[t] = epsilon_of(t)
        return known[t]

    if eps(rounds) <= target:
        return rounds
    if eps(1) > target:
        return 0
    good, bad = 1, rounds  # ε(good) ≤ target < ε(bad)
    slow = 0
    while bad - good > 1:
        width = bad - good
        guess = (good + bad) // 2
        e_good, e_bad = eps(good), eps(bad)
        if slow < 2 and guide is not None and math.isfinite(e_bad) and (
                guided := _guided_guess(guide, good, bad, e_good, e_bad, target)) is not None:
            guess = guided
        elif slow < 2 and math.isfinite(e_bad) and e_bad > e_good:
            # ε grows roughly like sqrt(t) for few rounds, like t for many: interpolate on ε².
            a, b, y = e_good ** 2, e_bad ** 2, target ** 2
            guess = good + round((y - a) / (b - a) * (bad - good))
        guess = min(max(guess, good + 1), bad - 1)
        if eps(guess) <= target:
            good = guess
        else:
            bad = guess
        slow = slow + 1 if bad - good > width / 2 else 0
    return good


def _guided_guess(guide: Callable[[int], float], good: int, bad: int, e_good: float, e_bad: float,
                  target: float) -> int | None:
    """The largest t in [good, bad) with guide(t) × r(t) ≤ target, r interpolated linearly in log t
    from ε / guide at good and bad (None if the guide is 0 at either)."""
    g_good, g_bad = guide(good), guide(bad)
    if not (0 < g_good < math.inf and 0 < g_bad < math.inf):
        return None
    r_good, r_bad, span = e_good / g_good, e_bad / g_bad, math.log(bad) - math.log(good)

    def estimate(t: int) -> float:
        return guide(t) * (r_good + (r_bad - r_good) * (math.log(t) - math.log(good)) / span)

    low, high = good, bad  # estimate(low) ≤ target < estimate(high), as ε is
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if estimate(middle) <= target else (low, middle)
    return low


def account(rounds: int, noise: float, q: float, delta: float, accountant: str,
            target: float | None) -> Accounted:
    """ε after the declared rounds and after one, and the crossing round when there is a target."""
    epsilon_of = epsilon_function(noise, q, delta, accountant)
    if accountant == "pld":
        points, mean_loss = epsilon_of.points(rounds)  # type: ignore[attr-defined]
        if points > MAX_PLD_POINTS:
            raise PLDTooCostly(points, mean_loss, noise)
    known = {rounds: epsilon_of(rounds)}
    known[1] = known[rounds] if rounds == 1 else epsilon_of(1)
    within = None if target is None else last_round_within(epsilon_of, rounds, target, known)
    return Accounted(known[rounds], known[1], within)
