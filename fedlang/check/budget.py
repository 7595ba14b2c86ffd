"""Privacy-budget actions of a monitor block: `lower_rate` and `raise_noise`.

    alert epsilon > 0.5 of target -> raise_noise   # more noise for the remaining rounds
    alert epsilon > 0.5 of target -> lower_rate    # fewer clients per round for the remaining rounds

ε is a function of the round alone (the accountant's, before anything runs), so the round r
after which such an alert fires is known here. The checker then picks the smallest change that
keeps ε after the declared rounds within the target — the smallest noise multiplier on the
3-significant-figure grid, or the largest clients_per_round — and proves it with dp-accounting by
composing r rounds of the declared mechanism with the remaining rounds of the changed one
(fedlang/check/accounting.py, `epsilon_after_phases`; the run lists every round's ε with
`epsilon_per_round_phases`). The result goes into the alert as ``adjust``: the program applies
it after round r (the DP aggregator's noise standard deviation, or its clients and the mean's
denominator) and its ε column follows the changed mechanism.
"""

from __future__ import annotations

import math

from .accounting import epsilon_function, last_round_within
from ..lib import simulation as simlib

BUDGET_ACTIONS = ("lower_rate", "raise_noise")

# With `accountant pld`, finding the change composes the run's privacy loss distribution some 15
# times (the alert's round, then each candidate noise or rate): past this many points in the
# declared run's distribution (estimated as for MAX_PLD_POINTS) the action is refused (E820).
MAX_BUDGET_PLD_POINTS = 100_000


def _rate(checked, clients_per_round: int) -> float:
    """The accountant's sampling rate with `clients_per_round` (under the simulated selection, if any)."""
    from ..lib import privacy as dp  # dp-accounting: imported only for specs with a privacy block

    p, sim = checked.privacy, checked.simulation
    if sim is None:
        return dp.sampling_rate(clients_per_round, p.population)
    available = 1.0 if sim.available.name == "always" else float(sim.available["p"])
    wanted = math.ceil(sim.config["over_select"] * clients_per_round - 1e-9)
    return simlib.selection_probability(p.population, available, min(wanted, p.population))


def _first_round_holding(checked, alert: dict) -> int | None:
    """The round after which the alert's ε condition first holds under the declared mechanism
    (ε grows with the rounds: the crossing search of fedlang/check/accounting.py over the run's
    own ε of round t, a handful of accountant calls)."""
    p, rounds = checked.privacy, checked.train.rounds
    epsilon_of = epsilon_function(p.noise_multiplier, p.sampling_rate, p.delta, p.accountant)
    threshold, op = alert["threshold"], alert["op"]
    if alert["metric"] == "epsilon_remaining":  # target − ε OP x  ⇔  ε (flipped OP) target − x
        threshold, op = p.epsilon_target - threshold, {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
    holds = {"<": lambda e: e < threshold, "<=": lambda e: e <= threshold,
             ">": lambda e: e > threshold, ">=": lambda e: e >= threshold}[op]
    if op in ("<", "<="):  # holds from round 1 on, or never
        return 1 if holds(epsilon_of(1)) else None
    if not holds(epsilon_of(rounds)):
        return None
    # ε > x first holds one round after the last with ε ≤ x; ε ≥ x one after the last with ε < x.
    below = threshold if op == ">" else math.nextafter(threshold, -math.inf)
    return last_round_within(epsilon_of, rounds, below, {}) + 1


def plan_budget_action(checked, alert: dict) -> tuple[dict | None, str | None]:
    """(the change the run applies, None) or (None, why no change keeps the target)."""
    from .accounting import (GRID_TOP, RdpBound, epsilon_after_phases, grid_index, grid_noise, rdp_bound_answer,
                             smallest_on_grid, smallest_rdp_noise)

    p, train = checked.privacy, checked.train
    rounds, target = train.rounds, p.epsilon_target
    after = _first_round_holding(checked, alert)
    if after is None or after >= rounds:
        return {"after_round": rounds, "noise_multiplier": p.noise_multiplier,
                "clients_per_round": train.clients_per_round, "sampling_rate": p.sampling_rate,
                "epsilon": p.epsilon, "fires": after is not None}, None
    first, rest = (after, p.noise_multiplier, p.sampling_rate), rounds - after

    def epsilon_with(noise: float, rate: float) -> float:
        """ε after the declared rounds with the change (RDP or PLD; the first phase's RDP or PLD kept)."""
        return epsilon_after_phases([first, (rest, noise, rate)], p.delta, p.accountant)

    if p.epsilon <= target * (1 - 1e-9):  # no change needed: the declared run's ε (the accountant's) is within
        return {"after_round": after, "noise_multiplier": p.noise_multiplier,
                "clients_per_round": train.clients_per_round, "sampling_rate": p.sampling_rate,
                "epsilon": p.epsilon, "fires": True}, None
    if epsilon_with(p.noise_multiplier, p.sampling_rate) <= target:  # (the two phases' arithmetic, at the bound)
        noise, clients, rate = p.noise_multiplier, train.clients_per_round, p.sampling_rate
    elif alert["action"] == "raise_noise":
        # the smallest noise on `noise auto`'s grid (3 significant figures) above the declared one
        low = min(math.floor(grid_index(p.noise_multiplier)), GRID_TOP)
        while low >= 0 and grid_noise(low) > p.noise_multiplier:  # at or below the declared noise: fails too
            low -= 1
        phases_of = lambda z: [first, (rest, z, p.sampling_rate)]  # noqa: E731
        unreachable = (f"after round {after} (ε {_epsilon_at(checked, after):.3f}) even noise 1000 for the "
                       f"remaining {_rounds(rest)} passes the target {target:g}")
        if p.accountant == "rdp":
            if (answer := smallest_rdp_noise(phases_of, p.delta, target, low)) is None:
                return None, unreachable
        else:  # PLD's ε is below the RDP bound's: its answer is usually at or below the bound's
            answer = rdp_bound_answer(phases_of, p.delta, target, low)
            if answer is None or (top := epsilon_with(grid_noise(answer), p.sampling_rate)) > target:
                answer, top = GRID_TOP, epsilon_with(1000.0, p.sampling_rate)
                if top > target:
                    return None, unreachable
            answer = smallest_on_grid(lambda z: epsilon_with(z, p.sampling_rate), target, answer, top, low,
                                      grid_noise(answer))
        noise = grid_noise(answer)
        clients, rate = train.clients_per_round, p.sampling_rate
    else:
        def fits(k: int) -> bool:
            return epsilon_with(p.noise_multiplier, _rate(checked, k)) <= target

        high = train.clients_per_round  # ε with `high` clients passes the target
        if p.accountant == "rdp":  # RdpBound's answers fit the accountant's ε too: the answer is at or above them
            phases_of = lambda k: [first, (rest, p.noise_multiplier, _rate(checked, int(k)))]  # noqa: E731
            whole, bound = RdpBound(phases_of, p.delta, whole=True), RdpBound(phases_of, p.delta)
            low = _most_fitting(lambda k: whole(k) <= target, 0, high, bisect=True)
            low = _most_fitting(lambda k: bound(k) <= target, low, high)
            low = _most_fitting(fits, low, high)
        else:
            low = _most_fitting(fits, 0, high, bisect=True)
        if low == 0:
            return None, (f"after round {after} even 1 client per round for the remaining {_rounds(rest)} "
                          f"passes the target {target:g} (noise {p.noise_multiplier:g})")
        noise, clients, rate = p.noise_multiplier, low, _rate(checked, low)
    proved = epsilon_with(noise, rate)  # the accountant's own ε of the changed run (epsilon_after_phases)
    if proved > target:  # the search's arithmetic agrees with the accountant's; never expected
        return None, f"dp-accounting gives ε {proved:.4f} > {target:g} for the change found"
    return {"after_round": after, "noise_multiplier": noise, "clients_per_round": clients, "sampling_rate": rate,
            "epsilon": proved, "fires": True}, None


def _most_fitting(fits, low: int, high: int, bisect: bool = False) -> int:
    """The largest k with fits(k), given that `low` fits (0: nobody) and `high` does not (fits holds up
    to some k): bisection, or (when the answer is likely just above `low`) probes of low + 1, 2, 4, …
    first."""
    step = 1
    while not bisect and low + step < high:
        if not fits(low + step):
            high = low + step
            break
        low, step = low + step, 2 * step
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def _epsilon_at(checked, t: int) -> float:
    """ε of the declared mechanism after round t."""
    from .accounting import epsilon_function

    p = checked.privacy
    return epsilon_function(p.noise_multiplier, p.sampling_rate, p.delta, p.accountant)(t)


def _rounds(n: int) -> str:
    return f"{n} round" if n == 1 else f"{n} rounds"


def describe_adjustment(alert: dict, checked) -> str:
    """For check and plan: what the budget action changes, and ε it proves."""
    a, p, train = alert["adjust"], checked.privacy, checked.train
    if not a["fires"]:
        return f"never fires within {train.rounds} rounds: nothing changes"
    if a["noise_multiplier"] == p.noise_multiplier and a["clients_per_round"] == train.clients_per_round:
        return f"after round {a['after_round']}: nothing to change, ε {a['epsilon']:.3f} ≤ {p.epsilon_target:g}"
    change = (f"noise {p.noise_multiplier:g} → {a['noise_multiplier']:g}" if alert["action"] == "raise_noise"
              else f"clients_per_round {train.clients_per_round} → {a['clients_per_round']} "
                   f"(q {p.sampling_rate:.4g} → {a['sampling_rate']:.4g})")
    return (f"after round {a['after_round']}: {change}; ε after {train.rounds} rounds {a['epsilon']:.3f} ≤ "
            f"{p.epsilon_target:g} ({p.accountant.upper()}, dp-accounting)")
