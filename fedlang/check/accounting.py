"""ε of the declared run at check time, in a number of accountant calls that grows with log(rounds).

The run (fedlang/lib/privacy.py, copied into the emitted program) lists every round's ε and,
when the target is passed, finds the last round within it with `last_round_within`. Check
needs only ε after the last round, ε after the first, and that crossing round, so it asks for
ε at O(log rounds) round counts instead of once per round (rounds 1000000 with RDP took
minutes; PLD at 3000 rounds over 30 s). The values are the same ones the run computes:

* RDP: one round's RDP vector, scaled by t — exactly the items of `epsilon_per_round`.
* PLD: one round's privacy loss distribution (the same one `PLDAccountant` builds), self-composed
  t times — what `epsilon_after(t)` computes (relative differences below 1e-9 to the run's
  round-by-round composition).

ε(t) grows with t, so the crossing is a search over t: secant guesses on ε against t, falling
back to bisection, so a PLD search costs a handful of compositions.

A PLD composed over t rounds spans about t × (one round's mean privacy loss) + 12 standard
deviations, in steps of the discretization interval; composing costs ~0.4 µs of CPU per point.
With little noise for its sampling rate (noise 0.1 at q = 0.2 over 1000 rounds: 10⁷ points,
~6 s; ε ≈ 12,000) that is refused before composing (PLDTooCostly → E820), past MAX_PLD_POINTS.

`noise auto` (solve_noise_multiplier in fedlang/lib/privacy.py) is the smallest noise on a
3-significant-figure grid whose dp-accounting ε meets the target; cheaper guesses lead the search
(RDP at the integer orders INTEGER_ORDERS alone, an upper bound on RDP's ε at a tenth of the
cost; for PLD, a PLD 8 times coarser), so the exact accountant runs a few times (3000 rounds
with PLD took ~2.6 s of CPU, now ~0.5 s). Budget actions (fedlang/check/budget.py) share the
functions of epsilon_function (cached) and search with the same cheaper RDP.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable


MAX_PLD_POINTS = 2_000_000  # estimated points of the PLD composed over all rounds (~0.5 s of CPU)


class PLDTooCostly(Exception):
    """The PLD composed over the run's rounds would exceed MAX_PLD_POINTS."""

    def __init__(self, points: float, mean_loss: float, noise: float | None = None, solving: bool = False,
                 rdp_noise: float | None = None):
        super().__init__(f"~{points:.2g} points")
        self.points, self.mean_loss, self.noise, self.solving = points, mean_loss, noise, solving
        self.rdp_noise = rdp_noise  # `noise auto`: what the RDP accountant solves the target with


def check_pld_solvable(target: float, rounds: int, q: float, delta: float) -> float | None:
    """Raise PLDTooCostly if `noise auto` with PLD would compose past the limit; else return the
    search's first guess (the answer of RDP at its integer orders, None if that cannot meet the target).

    The PLD answer is below that guess (PLD's ε is smaller than RDP's, and RDP's at the integer
    orders alone is larger still); the search may try noise down to about half of it, so the
    composition is estimated there (noise auto with ε = 10,000 over 1000 rounds at q = 0.2 took
    8.5 s of CPU)."""
    from ..lib import privacy as dp

    try:
        z = dp.solve_noise_multiplier(target, rounds, q, delta, "rdp", orders=INTEGER_ORDERS,
                                      rdp_cache=RDP_ROUNDS)
    except ValueError:
        return None  # PLD may still meet it (its search starts at 1); else E813 says so
    low = max(z / 2, 0.01)
    one_round = _one_round_points(low, q)
    if one_round > MAX_PLD_SOLVE_POINTS:  # each candidate noise builds its own one-round PLD
        raise PLDTooCostly(one_round, float("nan"), low, solving=True, rdp_noise=_rdp_noise(target, rounds, q, delta))
    points, mean_loss = epsilon_function(low, q, delta, "pld").points(rounds)  # type: ignore[attr-defined]
    if points > MAX_PLD_POINTS:
        raise PLDTooCostly(points, mean_loss, low, rdp_noise=_rdp_noise(target, rounds, q, delta))
    return z


def _rdp_noise(target: float, rounds: int, q: float, delta: float) -> float | None:
    """What `noise auto` gives with the RDP accountant (for E820's message)."""
    from ..lib import privacy as dp

    try:
        return dp.solve_noise_multiplier(target, rounds, q, delta, "rdp")
    except ValueError:
        return None


# dp-accounting's default RDP orders that are whole numbers: ε from them alone is an upper bound
# on the RDP accountant's ε, at a tenth of the cost (the fractional orders' series is the slow part).
INTEGER_ORDERS = tuple(float(k) for k in [*range(2, 64), 128, 256, 512, 1024])


# The search for `noise auto` builds a one-round PLD per candidate noise (~8 of them, ~10 µs of
# CPU per point): past this size at half the RDP answer it is refused (E820), ~1.6 s at the cap.
MAX_PLD_SOLVE_POINTS = 20_000


def _one_round_points(noise: float, q: float) -> float:
    """Points of one round's PLD as fedlang/lib/privacy.py discretizes it (without building it)."""
    import math

    from ..lib import privacy as dp

    x = 10 / noise + 0.5 / noise**2
    largest_loss = max(x + math.log(q), math.log1p(q * math.expm1(min(x, 700))))
    return largest_loss / dp._pld_discretization(noise, q)


@dataclass(frozen=True)
class Accounted:
    epsilon: float  # after the declared rounds
    first: float  # after one round
    last_within: int | None  # last round with ε ≤ target (None: no target)


class _Kept(dict):
    """A dict that forgets everything past 256 entries (the language server checks again and again)."""

    def __setitem__(self, key, value):
        if len(self) >= 256:
            self.clear()
        super().__setitem__(key, value)


# One round's RDP (orders, values) per (noise, sampling rate, orders or None for dp-accounting's):
# `noise auto`'s search (solve_noise_multiplier's rdp_cache) and the accounting that follows share it.
RDP_ROUNDS: dict = _Kept()


@functools.lru_cache(maxsize=8)
def epsilon_function(noise: float, q: float, delta: float, accountant: str) -> Callable[[int], float]:
    """ε after t rounds, as the run computes it; each call is one accountant evaluation (the PLD's
    are remembered, and so is the function: the privacy pass and a budget action share them)."""
    from dp_accounting import pld, rdp

    from ..lib import privacy as dp

    if accountant == "rdp":
        if (noise, q, None) not in RDP_ROUNDS:
            one_round = rdp.RdpAccountant()
            one_round.compose(dp.dp_event(noise, q, 1))
            RDP_ROUNDS[noise, q, None] = (one_round.orders, one_round.rdp)
        orders, per_round = RDP_ROUNDS[noise, q, None]
        return lambda t: dp._rdp_epsilon(orders, t * per_round, delta)
    one_round = pld.privacy_loss_distribution.from_gaussian_mechanism(
        standard_deviation=noise,
        value_discretization_interval=dp._pld_discretization(noise, q),
        sampling_prob=q,
    )
    cache: dict[int, float] = {}
    interval = dp._pld_discretization(noise, q)
    spread = [_loss_moments(pmf, interval) for pmf in (one_round._pmf_remove, one_round._pmf_add)
              if pmf is not None]

    def points(t: int) -> tuple[float, float]:
        """(estimated points of the t-round PLD, one round's mean loss): the wider of its two PMFs."""
        return max(((t * mean + 12 * math.sqrt(t * var)) / interval, mean) for mean, var in spread)

    def pld_epsilon(t: int) -> float:
        if t not in cache:
            composed = one_round if t == 1 else one_round.self_compose(t)
            cache[t] = float(composed.get_epsilon_for_delta(delta))
        return cache[t]

    pld_epsilon.points = points  # type: ignore[attr-defined]
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

    `known` holds ε at some round counts already computed (e.g. 1 and `rounds`).
    """
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
        if slow < 2 and math.isfinite(e_bad) and e_bad > e_good:
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
