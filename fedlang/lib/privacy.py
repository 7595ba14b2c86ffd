"""Privacy accounting for user-level DP-FedAvg (the Gaussian mechanism with client sampling).

Each round, every client of the population is picked independently with probability
``q = clients_per_round / population`` (Poisson sampling), the clipped model updates of the
picked clients are summed, and Gaussian noise with standard deviation ``z * clip`` is added
(``z`` is the noise multiplier). After ``T`` rounds the training is (epsilon, delta)-DP for
each user. Epsilon is computed with Google's ``dp_accounting`` library, by one of two
accountants:

* ``"rdp"`` (the default): Renyi DP, dp_accounting's default RDP orders. Fast and standard.
* ``"pld"``: privacy loss distributions. Tighter (smaller epsilon), slower.

``epsilon_per_round``: RDP, one round's RDP is computed once and scaled by t, exactly as the
accountant does for t rounds, so item t-1 equals ``epsilon_after(t, ...)``. PLD, the privacy
loss distribution of one round is composed with itself one round at a time (a few milliseconds
per round, more for large epsilons). Items agree with ``epsilon_after`` to about 1e-9
(relative); with sampling rate 1 they can be up to about 1e-5 larger, because epsilon_after
then discretizes the t-round Gaussian directly. Both are valid bounds.

PLD discretization (``_pld_discretization``): the accountant rounds privacy losses up to
multiples of an interval; a coarser one gives a larger (still valid) epsilon, faster. One
round's privacy losses are of size about q / z, so the interval is a tenth of that, at most
1e-3. Measured against 3 times finer intervals (z 0.7..10, q 1e-4..1, 10..1000 rounds), this
epsilon is at most about 0.1% too large. (A fixed 1e-3 was 2 times too large at q = 1e-4, and
dp_accounting's default 1e-4 is 5 to 20 times slower at q >= 0.01.) To bound the cost (building
one round's distribution takes ~10 us of CPU per point), the interval is widened so that it,
whose privacy losses reach about log(1 + q (exp(10 / z + 1 / (2 z^2)) - 1)), has at most 50,000
points; this matters only for small z with tiny q (measured against 200,000 points: 1.0% too
large at z 0.7, q 1e-4, 10,000 rounds; 0.4% at z 1, q 1e-4) or huge epsilons.

Like the other modules of fedlang/lib, these functions are copied verbatim into the programs
fedlang generates, so they import only the standard library and ``dp_accounting``.
Invalid inputs raise ``ValueError`` with a message saying what is wrong. ``REQUIRES`` at the
bottom maps each function to the helpers of this module it calls.
"""

import math
import numbers

import dp_accounting
from dp_accounting import pld, rdp


def _check_inputs(rounds, noise_multiplier, sampling_rate, delta=None, accountant=None):
    """Validate the accounting inputs; return them as (int, float, float, float, str).

    ``delta`` and ``accountant`` are checked only when given (not None).
    """
    if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral):
        raise ValueError(f"the number of rounds must be a whole number, got {rounds!r}")
    if rounds < 0:
        raise ValueError(f"the number of rounds cannot be negative, got {rounds}")
    for name, value in (("noise multiplier", noise_multiplier), ("sampling rate", sampling_rate)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"the {name} must be a number, got {value!r}")
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError(
            f"the noise multiplier must be a positive number, got {noise_multiplier} "
            "(0 would add no noise, so there would be no privacy guarantee)"
        )
    if not (0 < sampling_rate <= 1):
        raise ValueError(
            "the sampling rate (clients per round / population) must be more than 0 and at "
            f"most 1, got {sampling_rate}"
        )
    if delta is not None:
        if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0 < delta < 1:
            raise ValueError(
                f"delta must be a number strictly between 0 and 1 (e.g. 1e-5), got {delta!r}"
            )
        delta = float(delta)
    if accountant is not None:
        name = accountant.lower() if isinstance(accountant, str) else accountant
        if name not in ("rdp", "pld"):
            raise ValueError(f"the accountant must be 'rdp' or 'pld', got {accountant!r}")
        accountant = name
    return int(rounds), float(noise_multiplier), float(sampling_rate), delta, accountant


def _pld_discretization(noise_multiplier, sampling_rate):
    """The PLD accountant's value discretization interval (see the module docstring)."""
    z, q = noise_multiplier, sampling_rate
    x = 10 / z + 0.5 / z**2
    largest_loss = max(x + math.log(q), math.log1p(q * math.expm1(min(x, 700))))
    return max(min(1e-3, q / (10 * z)), largest_loss / 50_000)


def _rdp_epsilon(orders, rdp_values, delta):
    """Epsilon from RDP values, as RdpAccountant.get_epsilon computes it (rounding errors such as
    -1e-16, which dp_accounting's formulas return at tiny q or huge z, read as 0)."""
    return float(rdp.compute_epsilon(orders, [max(float(r), 0.0) for r in rdp_values], delta)[0])


def _rdp_round(noise_multiplier, sampling_rate, orders=None):
    """One round's RDP: (orders, values) of RdpAccountant (with its default orders when None)."""
    one_round = rdp.RdpAccountant(orders)
    one_round.compose(dp_event(noise_multiplier, sampling_rate, 1))
    return one_round.orders, one_round.rdp


def sampling_rate(clients_per_round, population):
    """The per-round probability that a given client takes part: clients_per_round / population."""
    for name, value in (("clients per round", clients_per_round), ("population", population)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"the {name} must be a whole number, got {value!r}")
        if value < 1:
            raise ValueError(f"the {name} must be at least 1, got {value}")
    if clients_per_round > population:
        raise ValueError(
            f"the clients per round ({clients_per_round}) cannot exceed the population "
            f"({population})"
        )
    return int(clients_per_round) / int(population)


def dp_event(noise_multiplier, sampling_rate, rounds):
    """The dp_accounting event of ``rounds`` rounds of the Gaussian mechanism (Poisson-sampled if q < 1)."""
    rounds, noise_multiplier, sampling_rate, _, _ = _check_inputs(
        rounds, noise_multiplier, sampling_rate
    )
    event = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sampling_rate < 1:
        event = dp_accounting.PoissonSampledDpEvent(sampling_rate, event)
    return dp_accounting.SelfComposedDpEvent(event, rounds)


def epsilon_after(rounds, noise_multiplier, sampling_rate, delta, accountant="rdp", orders=None):
    """Epsilon after ``rounds`` rounds, for the given delta.

    ``accountant`` is ``"rdp"`` (RdpAccountant with the given RDP ``orders``, or
    dp_accounting's defaults when None) or ``"pld"`` (PLDAccountant; see
    ``_pld_discretization``). Zero rounds give 0.0.
    """
    rounds, noise_multiplier, sampling_rate, delta, accountant = _check_inputs(
        rounds, noise_multiplier, sampling_rate, delta, accountant
    )
    if orders is not None and accountant != "rdp":
        raise ValueError("RDP orders can only be given with the 'rdp' accountant")
    if rounds == 0:
        return 0.0
    if accountant == "rdp":
        privacy_accountant = rdp.RdpAccountant(orders)
        privacy_accountant.compose(dp_event(noise_multiplier, sampling_rate, rounds))
        return _rdp_epsilon(privacy_accountant.orders, privacy_accountant.rdp, delta)
    privacy_accountant = pld.PLDAccountant(
        value_discretization_interval=_pld_discretization(noise_multiplier, sampling_rate)
    )
    privacy_accountant.compose(dp_event(noise_multiplier, sampling_rate, rounds))
    return float(privacy_accountant.get_epsilon(delta))


def epsilon_per_round(rounds, noise_multiplier, sampling_rate, delta, accountant="rdp"):
    """The list of epsilons after round 1, 2, ..., ``rounds`` (see the module docstring)."""
    rounds, noise_multiplier, sampling_rate, delta, accountant = _check_inputs(
        rounds, noise_multiplier, sampling_rate, delta, accountant
    )
    if rounds == 0:
        return []
    if accountant == "rdp":
        orders, rdp_per_round = _rdp_round(noise_multiplier, sampling_rate)
        return [_rdp_epsilon(orders, t * rdp_per_round, delta) for t in range(1, rounds + 1)]
    one_round = _pld_round(noise_multiplier, sampling_rate)
    epsilons, composed = [], one_round
    for t in range(1, rounds + 1):
        if t > 1:
            composed = composed.compose(one_round)
        epsilons.append(float(composed.get_epsilon_for_delta(delta)))
    return epsilons


def last_round_within(target_epsilon, rounds, noise_multiplier, sampling_rate, delta,
                      accountant="rdp"):
    """The last round t <= ``rounds`` after which epsilon is still at most ``target_epsilon``.

    0 if even one round exceeds the target. Epsilon grows with the rounds, so this is a
    binary search over epsilon_after.
    """
    rounds, noise_multiplier, sampling_rate, delta, accountant = _check_inputs(
        rounds, noise_multiplier, sampling_rate, delta, accountant
    )
    if isinstance(target_epsilon, bool) or not isinstance(target_epsilon, numbers.Real) or not (
        target_epsilon > 0
    ):
        raise ValueError(f"the target epsilon must be a positive number, got {target_epsilon!r}")
    good, bad = 0, rounds + 1  # epsilon_after(good) <= target < epsilon_after(bad)
    while bad - good > 1:
        middle = (good + bad) // 2
        epsilon = epsilon_after(middle, noise_multiplier, sampling_rate, delta, accountant)
        if epsilon <= target_epsilon:
            good = middle
        else:
            bad = middle
    return good


def _pld_round(noise_multiplier, sampling_rate, interval=None):
    """One round's privacy loss distribution (the one epsilon_per_round composes), discretized
    with ``interval`` (default: ``_pld_discretization`` of this mechanism)."""
    if interval is None:
        interval = _pld_discretization(noise_multiplier, sampling_rate)
    return pld.privacy_loss_distribution.from_gaussian_mechanism(
        standard_deviation=noise_multiplier,
        value_discretization_interval=interval,
        sampling_prob=sampling_rate,
    )


def _checked_phases(phases, delta, accountant):
    """Validated (rounds, noise, rate) phases with rounds > 0, delta, accountant and, for PLD, the
    common discretization interval: distributions compose only on one grid, so every phase uses
    the coarsest of the phases' intervals (any interval gives a valid upper bound; the coarsest
    keeps each phase's distribution within the size its own interval allows)."""
    checked = []
    for rounds, noise_multiplier, sampling_rate in phases:
        rounds, noise_multiplier, sampling_rate, delta, accountant = _check_inputs(
            rounds, noise_multiplier, sampling_rate, delta, accountant
        )
        if rounds > 0:
            checked.append((rounds, noise_multiplier, sampling_rate))
    interval = max((_pld_discretization(z, q) for _, z, q in checked), default=None)
    return checked, delta, accountant, interval


def epsilon_per_round_phases(phases, delta, accountant="rdp"):
    """Epsilon after every round of a run whose mechanism changes: ``phases`` is a list of
    (rounds, noise multiplier, sampling rate), run one after the other (e.g. the noise raised,
    or fewer clients sampled, after round r). The accountant composes the rounds' events
    (RDP: the sum of each round's RDP; PLD: the rounds' distributions composed one by one, on
    the coarsest of the phases' discretization intervals), so item t is the epsilon of the first
    t rounds; with one phase this is epsilon_per_round."""
    phases, delta, accountant, interval = _checked_phases(phases, delta, accountant)
    epsilons, total, composed = [], None, None
    for rounds, noise_multiplier, sampling_rate in phases:
        if accountant == "rdp":
            orders, per_round = _rdp_round(noise_multiplier, sampling_rate)
            start = 0 if total is None else total
            epsilons += [_rdp_epsilon(orders, start + t * per_round, delta) for t in range(1, rounds + 1)]
            total = start + rounds * per_round
            continue
        one_round = _pld_round(noise_multiplier, sampling_rate, interval)
        for _ in range(rounds):
            composed = one_round if composed is None else composed.compose(one_round)
            epsilons.append(float(composed.get_epsilon_for_delta(delta)))
    return epsilons


# Helpers each function calls (directly), so the compiler can copy what is needed.
REQUIRES: dict[str, tuple[str, ...]] = {
    "_check_inputs": (),
    "_pld_discretization": (),
    "_rdp_epsilon": (),
    "_rdp_round": ("dp_event",),
    "sampling_rate": (),
    "dp_event": ("_check_inputs",),
    "epsilon_after": ("_check_inputs", "_pld_discretization", "dp_event", "_rdp_epsilon"),
    "epsilon_per_round": ("_check_inputs", "_rdp_round", "_rdp_epsilon", "_pld_round"),
    "last_round_within": ("_check_inputs", "epsilon_after"),
    "_pld_round": ("_pld_discretization",),
    "_checked_phases": ("_check_inputs", "_pld_discretization"),
    "epsilon_per_round_phases": ("_checked_phases", "_rdp_round", "_rdp_epsilon", "_pld_round"),
}
