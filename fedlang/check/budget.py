"""Privacy-budget actions of a monitor block: `lower_rate` and `raise_noise`.

    alert epsilon > 0.5 of target -> raise_noise   # more noise for the remaining rounds
    alert epsilon > 0.5 of target -> lower_rate    # fewer clients per round for the remaining rounds

ε is a function of the round alone (the accountant's, before anything runs), so the round r
after which such an alert fires is known here. The checker then picks the smallest change that
keeps ε after the declared rounds within the target — the noise multiplier (3 significant
figures, rounded up) or the largest clients_per_round — and proves it with dp-accounting by
composing r rounds of the declared mechanism with the remaining rounds of the changed one
(fedlang/lib/privacy.py, `epsilon_after_phases`; the run lists every round's ε with
`epsilon_per_round_phases`). The result goes into the alert as ``adjust``: the program applies
it after round r (the DP aggregator's noise standard deviation, or its clients and the mean's
denominator) and its ε column follows the changed mechanism.
"""

from __future__ import annotations

import math

from .accounting import INTEGER_ORDERS, epsilon_function, last_round_within
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
    from ..lib import privacy as dp  # dp-accounting: imported only for specs with a privacy block

    p, train = checked.privacy, checked.train
    rounds, target = train.rounds, p.epsilon_target
    after = _first_round_holding(checked, alert)
    if after is None or after >= rounds:
        return {"after_round": rounds, "noise_multiplier": p.noise_multiplier,
                "clients_per_round": train.clients_per_round, "sampling_rate": p.sampling_rate,
                "epsilon": p.epsilon, "fires": after is not None}, None
    first = (after, p.noise_multiplier, p.sampling_rate)

    rdp_cache: dict = {}

    def rdp_of(noise: float, rate: float, orders: tuple | None = None):
        if (noise, rate, orders) not in rdp_cache:
            from dp_accounting import rdp

            accountant = rdp.RdpAccountant(None if orders is None else list(orders))
            accountant.compose(dp.dp_event(noise, rate, 1))
            rdp_cache[noise, rate, orders] = (accountant.orders, accountant.rdp)
        return rdp_cache[noise, rate, orders]

    first_phase: dict = {}

    def epsilon_with(noise: float, rate: float, quick: bool = False) -> float:
        """ε after the declared rounds with the change; `quick` (RDP): at the integer orders only,
        an upper bound on the exact ε at a tenth of the cost, to search with before the exact ε."""
        if p.accountant == "rdp":  # epsilon_after_phases' sum, with the first phase's RDP computed once
            subset = INTEGER_ORDERS if quick else None
            orders, declared = rdp_of(p.noise_multiplier, p.sampling_rate, subset)
            return dp._rdp_epsilon(orders, (rounds - after) * rdp_of(noise, rate, subset)[1] + after * declared,
                                   p.delta)
        # epsilon_after_phases' composition, with the first phase composed once per interval
        interval = max(dp._pld_discretization(p.noise_multiplier, p.sampling_rate),
                       dp._pld_discretization(noise, rate))
        if interval not in first_phase:
            one_round = dp._pld_round(p.noise_multiplier, p.sampling_rate, interval)
            first_phase[interval] = one_round if after == 1 else one_round.self_compose(after)
        second = dp._pld_round(noise, rate, interval)
        second = second if rounds - after == 1 else second.self_compose(rounds - after)
        return float(first_phase[interval].compose(second).get_epsilon_for_delta(p.delta))

    if epsilon_with(p.noise_multiplier, p.sampling_rate) <= target:  # no change needed
        noise, clients, rate = p.noise_multiplier, train.clients_per_round, p.sampling_rate
    elif alert["action"] == "raise_noise":
        if epsilon_with(1000.0, p.sampling_rate) > target:
            return None, (f"after round {after} (ε {dp.epsilon_after(after, p.noise_multiplier, p.sampling_rate, p.delta, p.accountant):.3f}) "
                          f"even noise 1000 for the remaining {_rounds(rounds - after)} passes the target {target:g}")
        top = 1000.0  # meets the target; with RDP, first the answer of the quick (larger) ε, which meets it too
        if p.accountant == "rdp" and epsilon_with(top, p.sampling_rate, quick=True) <= target:
            top = _smallest_noise(lambda z: epsilon_with(z, p.sampling_rate, quick=True), p.noise_multiplier, target)
        noise = _smallest_noise(lambda z: epsilon_with(z, p.sampling_rate), p.noise_multiplier, target, top)
        while epsilon_with(noise, p.sampling_rate) > target:  # rounding to 3 figures stays above the bound
            noise = _round_up_3(noise * 1.001)
        clients, rate = train.clients_per_round, p.sampling_rate
    else:
        def fits(k: int, quick: bool = False) -> bool:
            return epsilon_with(p.noise_multiplier, _rate(checked, k), quick) <= target

        low, high = 0, train.clients_per_round  # ε with `low` clients ≤ target (0: nobody) < ε with `high`
        if p.accountant == "rdp":  # bisection on the quick ε: its answer fits the exact ε too
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if fits(middle, quick=True) else (low, middle)
            high, step = train.clients_per_round, 1
            while low + step < high:  # the exact answer is at or above: probe 1, 2, 4, … above it
                if not fits(low + step):
                    high = low + step
                    break
                low, step = low + step, 2 * step
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if fits(middle) else (low, middle)
        if low == 0:
            return None, (f"after round {after} even 1 client per round for the remaining {_rounds(rounds - after)} "
                          f"passes the target {target:g} (noise {p.noise_multiplier:g})")
        noise, clients, rate = p.noise_multiplier, low, _rate(checked, low)
    proved = dp.epsilon_after_phases([first, (rounds - after, noise, rate)], p.delta, p.accountant)
    if proved > target:  # the search's arithmetic agrees with the accountant's; never expected
        return None, f"dp-accounting gives ε {proved:.4f} > {target:g} for the change found"
    return {"after_round": after, "noise_multiplier": noise, "clients_per_round": clients, "sampling_rate": rate,
            "epsilon": proved, "fires": True}, None


def _smallest_noise(epsilon_of, noise: float, target: float, top: float = 1000.0) -> float:
    """The noise (3 significant figures, rounded up) just meeting the target, given that `noise`
    does not and `top` does: regula falsi (Illinois) on log ε against log z, a handful of calls."""
    low, high = math.log(noise), math.log(top)
    f_low, f_high = math.log(epsilon_of(noise)) - math.log(target), math.log(epsilon_of(top)) - math.log(target)
    side = 0
    while high - low > 5e-4:
        middle = (low * f_high - high * f_low) / (f_high - f_low)
        middle = min(max(middle, low + 1e-4), high - 1e-4)
        f_middle = math.log(epsilon_of(math.exp(middle))) - math.log(target)
        if f_middle <= 0:
            high, f_high = middle, f_middle
            f_low, side = (f_low / 2, side) if side == -1 else (f_low, -1)
        else:
            low, f_low = middle, f_middle
            f_high, side = (f_high / 2, side) if side == 1 else (f_high, 1)
    return _round_up_3(math.exp(high))


def _rounds(n: int) -> str:
    return f"{n} round" if n == 1 else f"{n} rounds"


def _round_up_3(x: float) -> float:
    """x rounded up to 3 significant figures."""
    exponent = math.floor(math.log10(x)) - 2
    return float(f"{math.ceil(x / 10.0 ** exponent - 1e-9)}e{exponent}")


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
