"""Simulated client conditions for one federated round: availability, selection, dropout,
a time model with a deadline, stragglers and partial work.

Pure NumPy and the standard library, so the fedlang compiler copies these functions verbatim
into the programs it generates (like fedlang/lib/data.py); `fedlang check` uses the same code
to print the expected participation and round times before anything runs.

Every draw of a round comes from the generator it is given (the emitted program's per-round
``np.random.default_rng([SEED, round])``), and each client's device (its compute speed and its
bandwidth) from a hash of (seed, client): a slow phone stays slow from round to round.
Nothing is built for clients that are not selected, so a population
of 10^5 clients costs what its selected few cost (with ``available p``, the number of available
clients is one binomial draw; a daily pattern draws one uniform number per client and round).

The configuration is a plain dict (the emitted program's ``SIMULATION`` constant):

    available           ("always",) | ("probability", p) | ("daily", mean, amplitude, period)
                        | ("trace", {round: [client ids available]}, period)
    over_select         f >= 1: ceil(f * K) of the available clients are selected
    min_clients         a round with fewer completed clients is abandoned (model unchanged)
    dropout             probability that a selected client fails and sends nothing
    speed               None | ("constant", s) | ("lognormal", median, sigma) | ("uniform", lo, hi)
                        | ("attribute", name, one value per value of that attribute):
                        seconds per example of local training
    bandwidth           None | the same forms, in Mbit/s (down and up)
    deadline            None | seconds: clients that would finish later are stragglers
    stragglers          "drop" (FedAvg: their work is lost) | "partial" (the steps done count)
    straggler_fraction  FedProx's systems heterogeneity: this fraction of the selected clients
                        run a uniformly random number of epochs in 1..E (dropped under "drop")
    max_steps           None | a cap on local steps (batches) per round
    full_epochs_at      None | n: clients with fewer than n examples run proportionally fewer
                        epochs (at least one)
    seed                the spec's seed (for the devices' stable speed and bandwidth)
    attributes          () | ((name, "categorical", values, weights) | (name, "column", values, codes), ...):
                        what each client is (device type, region, clinic), drawn from declared
                        weights by a hash of (seed, client) or read per client from a data column;
                        each round reports how its participants spread over them

``REQUIRES`` at the bottom maps each function to the helpers of this module it calls.
"""

import csv
import math

import numpy as np


def _device_uniforms(seed, clients, stream):
    """A uniform number in (0, 1) for each client: a SplitMix64 hash of (seed, client, stream), so
    a device's draws are its own and the same in every round, without a generator per client."""
    with np.errstate(over="ignore"):
        x = (np.asarray(clients, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + np.uint64(seed % 2**63) * np.uint64(0xBF58476D1CE4E5B9) + np.uint64(stream) * np.uint64(0x94D049BB133111EB))
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def _device_draw(form, seed, clients, stream):
    """Each client's value of a declared distribution (seconds per example, or Mbit/s)."""
    kind = form[0]
    if kind == "constant":
        return np.full(len(clients), float(form[1]))
    u = _device_uniforms(seed, clients, stream)
    if kind == "lognormal":  # Box-Muller with a second uniform of the same device
        v = _device_uniforms(seed, clients, stream + 1)
        z = np.sqrt(-2.0 * np.log(u)) * np.cos(2.0 * np.pi * v)
        return form[1] * np.exp(form[2] * z)
    if kind == "uniform":
        return form[1] + (form[2] - form[1]) * u
    raise ValueError(f"simulation: unknown distribution {kind!r}")


def device_profiles(config, clients):
    """(seconds per example, Mbit/s) of each of ``clients``; NaN where no model is declared.

    A client's device is a function of (seed, client id) alone, so it is the same in every round.
    """
    clients = np.asarray(clients, dtype=np.int64)
    found = []
    for key, stream in (("speed", 1), ("bandwidth", 3)):
        form = config.get(key)
        if form is None:
            found.append(np.full(len(clients), np.nan))
        elif form[0] == "attribute":  # ("attribute", name, a value per attribute value): follows the attribute
            found.append(np.asarray(form[2], dtype=np.float64)[client_attributes(config, clients)[form[1]]])
        else:
            found.append(_device_draw(form, config["seed"], clients, stream))
    return found[0], found[1]


def client_attributes(config, clients):
    """{attribute name: index into its values, for each of ``clients``}. A declared distribution
    is drawn by a hash of (seed, client, attribute), so a client's device type stays its own."""
    clients = np.asarray(clients, dtype=np.int64)
    found = {}
    for index, (name, kind, values, spec) in enumerate(config.get("attributes", ())):
        if kind == "categorical":
            u = _device_uniforms(config["seed"], clients, 16 + index)
            cumulative = np.cumsum(np.asarray(spec, dtype=np.float64))
            found[name] = np.minimum(np.searchsorted(cumulative / cumulative[-1], u, side="right"), len(values) - 1)
        elif kind == "column":
            found[name] = np.asarray(spec, dtype=np.int64)[clients]
        else:
            raise ValueError(f"simulation: unknown attribute kind {kind!r}")
    return found


def participant_spread(config, clients):
    """How the round's participants spread over each attribute, as row entries: per attribute A,
    ``A_<value>`` (participants with that value), ``A_coverage`` (share of A's values present)
    and ``A_entropy`` (Shannon entropy of the counts over log(number of values): 1 is an even
    spread, 0 all alike or nobody; an attribute with one value has 1 whenever anyone takes part)."""
    row = {}
    drawn = client_attributes(config, clients)
    for name, _, values, _ in config.get("attributes", ()):
        counts = np.bincount(drawn[name], minlength=len(values))
        for value, count in zip(values, counts):
            row[f"{name}_{value}"] = int(count)
        total = int(counts.sum())
        row[f"{name}_coverage"] = float(np.count_nonzero(counts) / len(values))
        if total == 0:
            entropy = 0.0
        elif len(values) == 1:
            entropy = 1.0
        else:
            share = counts[counts > 0] / total
            entropy = float(-(share * np.log(share)).sum() / math.log(len(values)))
        row[f"{name}_entropy"] = entropy
    return row


def daily_availability(num_clients, round_num, mean, amplitude, period, seed):
    """Each client's probability of being available in ``round_num``: a sinusoid over rounds
    with period ``period`` (rounds per day) and a phase per client (spread evenly over the day
    by a golden-ratio sequence, shifted by the seed), clipped to [0, 1]."""
    offset = np.random.default_rng([seed, 0x5EED]).random()
    phase = (np.arange(num_clients) * 0.6180339887498949 + offset) % 1.0  # golden-ratio spacing
    p = mean + amplitude * np.sin(2 * np.pi * ((round_num - 1) / period + phase))
    return np.clip(p, 0.0, 1.0)


def load_availability_trace(path):
    """A CSV file with a header `client,round`: one row per client and round in which that
    client is available (the shape of FedScale's availability traces, counted in rounds).
    Returns ({round: sorted client ids}, period): round r of a run uses the trace's round
    ((r - 1) % period) + 1, so a trace of one day repeats."""
    available = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"client", "round"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: an availability trace needs the columns client,round; "
                             f"got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            try:
                client, round_num = int(row["client"]), int(row["round"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: client and round must be integers, got {row}") from None
            if client < 0 or round_num < 1:
                raise ValueError(f"{path}:{line}: client must be >= 0 and round >= 1, got {row}")
            available.setdefault(round_num, set()).add(client)
    if not available:
        raise ValueError(f"{path}: the availability trace has no rows")
    return {r: sorted(c) for r, c in available.items()}, max(available)


def prepare_simulation(config):
    """The configuration with an availability trace file read into memory (once per run)."""
    form = config["available"]
    if form[0] == "trace" and isinstance(form[1], str):
        trace, period = load_availability_trace(form[1])
        config = dict(config, available=("trace", trace, period))
    return config


def _available_pool(config, rng, round_num, num_clients):
    """(number available, the available client ids or None when any client is equally likely)."""
    form = config["available"]
    kind = form[0]
    if kind == "always":
        return num_clients, None
    if kind == "probability":
        return int(rng.binomial(num_clients, form[1])), None
    if kind == "daily":
        p = daily_availability(num_clients, round_num, form[1], form[2], form[3], config["seed"])
        pool = np.flatnonzero(rng.random(num_clients) < p)
        return len(pool), pool
    if kind == "trace":
        trace, period = form[1], form[2]
        ids = np.asarray(trace.get((round_num - 1) % period + 1, ()), dtype=np.int64)
        pool = ids[ids < num_clients]
        return len(pool), pool
    raise ValueError(f"simulation: unknown availability {kind!r}")


def examples_in_steps(steps, size, batch):
    """Examples processed by ``steps`` batches of a client's batched, repeated data set (each
    epoch ends with a smaller batch when ``batch`` does not divide ``size``)."""
    steps, size = np.asarray(steps, dtype=np.int64), np.asarray(size, dtype=np.int64)
    per_epoch = -(-size // batch)
    epochs, rest = np.divmod(steps, np.maximum(per_epoch, 1))
    return epochs * size + rest * batch


def steps_within(examples, size, batch):
    """The most steps whose examples (as ``examples_in_steps`` counts them) fit in ``examples``."""
    # Clipped below 2**53 (exact in float64, safe in int64): a deadline of 1e40 s is "no cut", not an overflow.
    examples = np.floor(np.clip(np.asarray(examples, dtype=np.float64), 0, 2.0**53)).astype(np.int64)
    size = np.asarray(size, dtype=np.int64)
    per_epoch = -(-size // batch)
    epochs, rest = np.divmod(np.maximum(examples, 0), np.maximum(size, 1))
    return epochs * per_epoch + rest // batch


def simulate_round(rng, config, round_num, sizes, clients_per_round, local_epochs, batch,
                   bytes_down, bytes_up):
    """The conditions of one round: who is available, selected, drops out, straggles, and how
    many local steps each client that is kept runs.

    ``sizes``: training examples of every client (index = client id). Returns a dict:
    clients (sorted ids whose updates are aggregated), steps (local steps of each of them),
    available, selected, completed, dropped (failed: sent nothing), straggling (past the
    deadline, or FedProx stragglers; under "partial" they are among the completed),
    surplus (finished but not needed: over-selection keeps the first K), abandoned (fewer
    than min_clients completed: the round leaves the model unchanged), seconds (simulated
    round time; None without a time model) and participation (completed / selected).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    num_clients = len(sizes)
    goal = int(clients_per_round)
    n_available, pool = _available_pool(config, rng, round_num, num_clients)
    wanted = min(math.ceil(config.get("over_select", 1.0) * goal - 1e-9), n_available)
    if pool is None:
        selected = np.sort(rng.choice(num_clients, size=wanted, replace=False)).astype(np.int64)
    else:
        selected = np.sort(rng.choice(pool, size=wanted, replace=False)).astype(np.int64)
    m = len(selected)
    n = sizes[selected]

    failed = rng.random(m) < config.get("dropout", 0.0)
    epochs = np.full(m, int(local_epochs), dtype=np.int64)
    if config.get("full_epochs_at"):
        epochs = np.clip(np.ceil(local_epochs * n / config["full_epochs_at"]).astype(np.int64), 1, local_epochs)
    heterogeneous = rng.random(m) < config.get("straggler_fraction", 0.0)
    random_epochs = rng.integers(1, int(local_epochs) + 1, size=m)
    epochs = np.where(heterogeneous, np.minimum(random_epochs, epochs), epochs)
    steps = epochs * (-(-n // batch))
    if config.get("max_steps"):
        steps = np.minimum(steps, config["max_steps"])
    order_noise = rng.random(m)  # who finishes first when there is no time model

    partial = config.get("stragglers", "drop") == "partial"
    late = np.zeros(m, dtype=bool)
    finish = order_noise.copy()
    timed = config.get("speed") is not None
    deadline = config.get("deadline")
    if timed:
        speed, mbits = device_profiles(config, selected)
        comm = np.zeros(m) if config.get("bandwidth") is None else \
            (bytes_down + bytes_up) * 8 / (mbits * 1e6)
        finish = comm + examples_in_steps(steps, n, batch) * speed
        if deadline is not None:
            late = finish > deadline
            if partial:
                done = steps_within((deadline - comm) / speed, n, batch)
                steps = np.where(late, np.minimum(steps, done), steps)
                finish = np.where(late, float(deadline), finish)

    straggling = (late | heterogeneous) & ~failed
    lost = failed | (straggling & (not partial)) | (steps <= 0)
    finishers = np.flatnonzero(~lost)
    finishers = finishers[np.argsort(finish[finishers], kind="stable")]
    kept = np.sort(finishers[:goal])
    completed = len(kept)
    abandoned = completed < config.get("min_clients", 1)

    seconds = None
    if timed:
        if completed >= goal:
            seconds = float(finish[finishers[goal - 1]])
        elif deadline is not None and (lost.any() or late.any()):
            seconds = float(deadline)  # the server waits for the missing clients until the deadline
        else:
            seconds = float(finish[finishers].max()) if completed else 0.0
    return {
        "clients": selected[kept],
        "steps": steps[kept],
        "available": int(n_available),
        "selected": int(m),
        "completed": int(completed),
        "dropped": int(failed.sum()),
        "straggling": int(straggling.sum()),
        "surplus": int(len(finishers) - completed),
        "abandoned": bool(abandoned),
        "seconds": seconds,
        "participation": completed / m if m else 0.0,
    }


def selection_probability(population, available, selected):
    """P(a given client is selected in a round) when each of ``population`` clients is
    available with probability ``available`` and ``selected`` of the available ones are picked
    uniformly: p * E[min(selected, 1 + B) / (1 + B)] with B ~ Binomial(population - 1, p).
    An upper bound on the chance that its update is used (dropouts and deadlines only lower it),
    which the DP accountant takes as its sampling rate."""
    p = float(available)
    if p <= 0:
        return 0.0
    if p >= 1:
        return min(1.0, selected / population)
    n = population - 1
    k = np.arange(n + 1)
    log_pmf = (np.vectorize(math.lgamma)(n + 1.0) - np.vectorize(math.lgamma)(k + 1.0)
               - np.vectorize(math.lgamma)(n - k + 1.0) + k * math.log(p) + (n - k) * math.log1p(-p))
    pmf = np.exp(log_pmf - log_pmf.max())
    pmf /= pmf.sum()
    return float(p * np.sum(pmf * np.minimum(selected, 1 + k) / (1 + k)))


REQUIRES: dict[str, tuple[str, ...]] = {
    "_device_uniforms": (),
    "_device_draw": ("_device_uniforms",),
    "device_profiles": ("_device_draw", "client_attributes"),
    "client_attributes": ("_device_uniforms",),
    "participant_spread": ("client_attributes",),
    "daily_availability": (),
    "load_availability_trace": (),
    "prepare_simulation": ("load_availability_trace",),
    "_available_pool": ("daily_availability",),
    "examples_in_steps": (),
    "steps_within": (),
    "simulate_round": ("_available_pool", "device_profiles", "examples_in_steps", "steps_within"),
    "selection_probability": (),
}
