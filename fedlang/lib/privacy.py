"""Privacy accounting for user-level DP-FedAvg (the Gaussian mechanism with client sampling).

Each round, every client of the population is picked independently with probability
``q = clients_per_round / population`` (Poisson sampling), the clipped model updates of the
picked clients are summed, and Gaussian noise with standard deviation ``z * clip`` is added
(``z`` is the noise multiplier). After ``T`` rounds the training is (epsilon, delta)-DP for
each user. Epsilon is computed with Google's ``dp_accounting`` library, by one of two
accountants:

* ``"rdp"`` (the default): Renyi DP, dp_accounting's default RDP orders. Fast and standard.
* ``"pld"``: privacy loss distributions. Tighter (smaller epsilon), slower.

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
    """The value discretization interval of the PLD accountant.

    The PLD accountant rounds privacy losses up to multiples of this interval: a coarser one
    gives a larger (still valid) epsilon, faster. One round's privacy losses are of size
    about q / z, so the interval is a tenth of that, at most 1e-3. Measured against 3 times
    finer intervals (z 0.7..10, q 1e-4..1, 10..1000 rounds), this epsilon is at most about
    0.1% too large. (A fixed 1e-3 was 2 times too large at q = 1e-4, and dp_accounting's
    default 1e-4 is 5 to 20 times slower at q >= 0.01.) To bound the cost (building one
    round's distribution takes ~10 us of CPU per point), the interval is widened so that it,
    whose privacy losses reach about log(1 + q (exp(10 / z + 1 / (2 z^2)) - 1)), has at most
    50,000 points; this matters only for small z with tiny q (measured against 200,000 points:
    1.0% too large at z 0.7, q 1e-4, 10,000 rounds; 0.4% at z 1, q 1e-4) or huge epsilons.
    """
    z, q = noise_multiplier, sampling_rate
    x = 10 / z + 0.5 / z**2
    largest_loss = max(x + math.log(q), math.log1p(q * math.expm1(min(x, 700))))
    return max(min(1e-3, q / (10 * z)), largest_loss / 50_000)


def _rdp_epsilon(orders, rdp_values, delta):
    """Epsilon from RDP values, as RdpAccountant.get_epsilon computes it.

    RDP values are never negative, but for tiny sampling rates or huge noise multipliers
    dp_accounting's formulas can return rounding errors such as -1e-16, which its
    compute_epsilon refuses; they are read as 0.
    """
    return float(rdp.compute_epsilon(orders, [max(float(r), 0.0) for r in rdp_values], delta)[0])


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
    """The dp_accounting event for ``rounds`` rounds of the (Poisson-sampled) Gaussian mechanism.

    With ``sampling_rate == 1`` every client takes part in every round, so there is no
    sampling wrapper.
    """
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
    """The list of epsilons after round 1, 2, ..., ``rounds`` (its last item is epsilon_after).

    RDP: one round's RDP is computed once and scaled by t, exactly as the accountant does for
    t rounds, so item t-1 equals ``epsilon_after(t, ...)``. PLD: the privacy loss distribution
    of one round is composed with itself one round at a time (a few milliseconds per round,
    more for large epsilons). Items agree with ``epsilon_after`` to about 1e-9 (relative);
    with sampling rate 1 they can be up to about 1e-5 larger, because epsilon_after then
    discretizes the t-round Gaussian directly. Both are valid bounds.
    """
    rounds, noise_multiplier, sampling_rate, delta, accountant = _check_inputs(
        rounds, noise_multiplier, sampling_rate, delta, accountant
    )
    if rounds == 0:
        return []
    if accountant == "rdp":
        one_round = rdp.RdpAccountant()
        one_round.compose(dp_event(noise_multiplier, sampling_rate, 1))
        orders, rdp_per_round = one_round.orders, one_round.rdp
        return [_rdp_epsilon(orders, t * rdp_per_round, delta) for t in range(1, rounds + 1)]
    one_round = pld.privacy_loss_distribution.from_gaussian_mechanism(
        standard_deviation=noise_multiplier,
        value_discretization_interval=_pld_discretization(noise_multiplier, sampling_rate),
        sampling_prob=sampling_rate,
    )
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


def solve_noise_multiplier(target_epsilon, rounds, sampling_rate, delta, accountant="rdp",
                           first_guess=None, orders=None, rdp_cache=None):
    """The smallest noise multiplier z, to 3 significant figures, with epsilon <= the target.

    z is searched on the grid 0.0100, 0.0101, ..., 9.99, 10.0, 10.1, ..., 1000 and rounded UP,
    so the returned z always meets the target (and the grid value just below it does not).
    Raises ValueError if even z = 1000 exceeds the target. Targets that z = 0.01 already
    meets (epsilons in the thousands or more) give 0.01.

    ``orders``: RDP orders (``"rdp"`` only; default: dp_accounting's). ``first_guess`` only
    speeds up the search; the default is the answer of RDP at the integer orders alone (an
    upper bound on RDP's epsilon at a tenth of the cost). PLD then searches a PLD 8 times
    coarser from there, and finally the exact one from the coarse answer. ``rdp_cache``: a dict
    keeping one round's RDP per (z, sampling rate, orders), e.g. for the accounting that follows.
    """
    rounds, _, sampling_rate, delta, accountant = _check_inputs(
        rounds, 1.0, sampling_rate, delta, accountant
    )
    if isinstance(target_epsilon, bool) or not isinstance(target_epsilon, numbers.Real) or not (
        0 < target_epsilon < math.inf
    ):
        raise ValueError(f"the target epsilon must be a positive number, got {target_epsilon!r}")
    if rounds == 0:
        raise ValueError("the number of rounds must be at least 1 to choose a noise multiplier")

    # Grid index i = 0..4500 <-> z = n * 10**(k - 2), n = 100..999 the 3 significant digits.
    def z_at(i):
        k, n = divmod(i, 900)
        return float(f"{100 + n}e{k - 4}")

    def index_of(z):
        k = math.floor(math.log10(z))
        return 900 * (k + 2) + (z / 10.0 ** (k - 2) - 100)

    def top(eps_of):
        """(grid index, epsilon) of z = 10, 100 or 1000, the first that meets the target; (None,
        epsilon at z = 1000) if none does. RDP at a large z costs ~z² (dp_accounting's series
        for fractional orders: ~1 s of CPU per call at z = 1000), so the larger ones are tried
        only when needed."""
        for i in (2700, 3600, 4500):  # z = 10, 100, 1000
            epsilon = eps_of(z_at(i))
            if epsilon <= target_epsilon:
                return i, epsilon
        return None, epsilon

    def search(eps_of, first_guess, start):
        """The grid z meeting the target with the smallest index, given that z_at(start[0]) does."""
        # Invariant: the answer is in (low, high]; epsilon(z_at(low)) > target (low = -1 stands
        # for "below 0.01") and epsilon(z_at(high)) <= target.
        low, high = -1, start[0]
        points = [(z_at(high), start[1])]
        guess, slow_steps = index_of(first_guess), 0
        while high - low > 1:
            i = min(max(round(guess), low + 1), high - 1)
            z = z_at(i)
            epsilon = eps_of(z)
            width = high - low
            if epsilon <= target_epsilon:
                high = i
            else:
                low = i
            points.append((z, epsilon))
            slow_steps = slow_steps + 1 if high - low > width / 2 else 0
            # Next guess: a secant step on log(epsilon) against log(z) through the last two
            # points; after two steps that did not halve the bracket (or without a secant),
            # bisection, or while no z below the answer is known, a step down of 1, 4, 16, ...
            # grid values (bisection would try z near 0.1, where the accountants are slowest).
            (z1, e1), (z2, e2) = points[-2], points[-1]
            secant = None
            if 0 < e1 < math.inf and 0 < e2 < math.inf and z1 != z2:
                slope = (math.log(e2) - math.log(e1)) / (math.log(z2) - math.log(z1))
                if slope < 0:
                    log_z = math.log(z2) + (math.log(target_epsilon) - math.log(e2)) / slope
                    secant = index_of(math.exp(min(max(log_z, math.log(0.01)), math.log(1000.0))))
            if secant is not None and slow_steps < 2:
                guess = secant
            elif low == -1:
                guess = high - 4 ** slow_steps
            else:
                guess = (low + high) / 2
        return z_at(high)

    def rdp_epsilon(z, orders=None):
        if rdp_cache is None:
            return epsilon_after(rounds, z, sampling_rate, delta, "rdp", orders)
        # epsilon_after's arithmetic (the accountant scales one round's RDP by the rounds), with
        # one round's RDP kept in rdp_cache
        key = (z, sampling_rate, None if orders is None else tuple(orders))
        if key not in rdp_cache:
            one_round = rdp.RdpAccountant(None if orders is None else list(orders))
            one_round.compose(dp_event(z, sampling_rate, 1))
            rdp_cache[key] = (one_round.orders, one_round.rdp)
        kept_orders, per_round = rdp_cache[key]
        return _rdp_epsilon(kept_orders, rounds * per_round, delta)

    def accountant_epsilon(z):
        if accountant == "rdp":
            return rdp_epsilon(z, orders)
        return epsilon_after(rounds, z, sampling_rate, delta, accountant)

    start = top(accountant_epsilon)
    if start[0] is None:
        top_epsilon = start[1]
        raise ValueError(
            f"target epsilon {target_epsilon} is unreachable in {rounds} rounds with sampling "
            f"rate {sampling_rate:.4g} and delta {delta:g}: even noise multiplier 1000 gives "
            f"epsilon {top_epsilon:.4g}. Use fewer rounds or fewer clients per round, or a "
            "larger target."
        )
    # Only the exact epsilon decides (the search ends on two neighbouring grid values, the
    # upper meeting the target and the lower not); first guesses only save slow evaluations.
    whole = [order for order in rdp.RdpAccountant().orders if float(order).is_integer()]
    if accountant == "rdp" and orders is not None:
        return search(accountant_epsilon, 1.0, start)
    if first_guess is None:
        # RDP at the integer orders only: a tenth of the cost (dp_accounting's series for the
        # fractional orders 1.1 ... 10.9 is the slow part), and an upper bound on RDP's epsilon.
        try:
            first_guess = solve_noise_multiplier(target_epsilon, rounds, sampling_rate, delta, "rdp",
                                                 orders=whole, rdp_cache=rdp_cache)
        except ValueError:
            first_guess = 1.0
    if accountant == "rdp":
        return search(accountant_epsilon, first_guess, start)

    # PLD: start at the answer of a PLD 8 times coarser (8 times fewer points; its epsilons are
    # a little larger), itself started at the first guess.
    def coarse_epsilon(z):
        coarse = pld.PLDAccountant(
            value_discretization_interval=8 * _pld_discretization(z, sampling_rate)
        )
        coarse.compose(dp_event(z, sampling_rate, rounds))
        return float(coarse.get_epsilon(delta))

    coarse_start = top(coarse_epsilon)
    if coarse_start[0] is not None:
        first_guess = search(coarse_epsilon, first_guess, coarse_start)
    return search(accountant_epsilon, first_guess, start)


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
            one_round = rdp.RdpAccountant()
            one_round.compose(dp_event(noise_multiplier, sampling_rate, 1))
            orders, per_round = one_round.orders, one_round.rdp
            start = 0 if total is None else total
            epsilons += [_rdp_epsilon(orders, start + t * per_round, delta) for t in range(1, rounds + 1)]
            total = start + rounds * per_round
            continue
        one_round = _pld_round(noise_multiplier, sampling_rate, interval)
        for _ in range(rounds):
            composed = one_round if composed is None else composed.compose(one_round)
            epsilons.append(float(composed.get_epsilon_for_delta(delta)))
    return epsilons


def epsilon_after_phases(phases, delta, accountant="rdp"):
    """The last item of epsilon_per_round_phases, in a few accountant calls (RDP: each phase's
    RDP scaled by its rounds; PLD: each phase's distribution self-composed, then composed)."""
    phases, delta, accountant, interval = _checked_phases(phases, delta, accountant)
    total, composed = None, None
    for rounds, noise_multiplier, sampling_rate in phases:
        if accountant == "rdp":
            one_round = rdp.RdpAccountant()
            one_round.compose(dp_event(noise_multiplier, sampling_rate, 1))
            orders = one_round.orders
            total = rounds * one_round.rdp + (0 if total is None else total)
            continue
        phase = _pld_round(noise_multiplier, sampling_rate, interval)
        phase = phase if rounds == 1 else phase.self_compose(rounds)
        composed = phase if composed is None else composed.compose(phase)
    if accountant == "rdp":
        return 0.0 if total is None else _rdp_epsilon(orders, total, delta)
    return 0.0 if composed is None else float(composed.get_epsilon_for_delta(delta))


# Helpers each function calls (directly), so the compiler can copy what is needed.
REQUIRES: dict[str, tuple[str, ...]] = {
    "_check_inputs": (),
    "_pld_discretization": (),
    "_rdp_epsilon": (),
    "sampling_rate": (),
    "dp_event": ("_check_inputs",),
    "epsilon_after": ("_check_inputs", "_pld_discretization", "dp_event", "_rdp_epsilon"),
    "epsilon_per_round": ("_check_inputs", "_pld_discretization", "dp_event", "_rdp_epsilon"),
    "last_round_within": ("_check_inputs", "epsilon_after"),
    "solve_noise_multiplier": ("_check_inputs", "epsilon_after", "_pld_discretization", "dp_event",
                               "_rdp_epsilon"),
    "_pld_round": ("_pld_discretization",),
    "_checked_phases": ("_check_inputs", "_pld_discretization"),
    "epsilon_per_round_phases": ("_checked_phases", "dp_event", "_rdp_epsilon", "_pld_round"),
    "epsilon_after_phases": ("_checked_phases", "dp_event", "_rdp_epsilon", "_pld_round"),
}
