"""`fedlang plan`: what a run will cost and guarantee, before it starts (no TensorFlow)."""

from __future__ import annotations

from .checked import CheckedSpec
from .plan import Plan


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError


def expected_conditions(c: CheckedSpec, plan: Plan) -> dict | None:
    """The simulation block's expected per-round conditions (None: no block, or sizes unknown)."""
    if c.simulation is None or c.data.client_sizes is None:
        return None
    from .check.simulation import expected_conditions as expected

    comm, train = plan.communication, c.train
    return expected(c.simulation, c.data.client_sizes, train.clients_per_round, train.local_epochs, c.data.batch,
                    comm["down"], comm["up"], train.rounds)


def plan_rows(c: CheckedSpec, plan: Plan) -> list[tuple[str, str]]:
    """(label, text) rows of the cost and privacy table."""
    train, comm = c.train, plan.communication
    rounds = c.privacy.rounds_to_run if c.privacy else train.rounds
    params = c.model.param_count
    rows = [
        ("model parameters", f"{params:,} ({human_bytes(4 * params)} as float32)"),
        ("clients per round", f"{train.clients_per_round} of {c.data.num_clients}"),
        ("rounds", f"{rounds}" + (f" (of {train.rounds} declared; the ε budget stops the run)"
                                  if rounds != train.rounds else "")),
        ("down per client per round", f"{human_bytes(comm['down'])} (the float32 model)"),
    ]
    if c.model.has_local_layers:
        from .check.personalize import describe_local_layers

        rows[-1] = ("down per client per round", f"{human_bytes(comm['down'])} (the float32 shared layers)")
        rows.append(("local layers", describe_local_layers(c.model)))
    if comm["up"] != comm["up_uncompressed"]:
        ratio = comm["up_uncompressed"] / comm["up"]
        how = (f"{c.aggregation.quantize_bits}-bit quantization" if c.aggregation.quantize_bits
               else f"top-{c.aggregation.sparsify:g} sparsification (values and int32 indices)")
        rows.append(("up per client per round",
                     f"{human_bytes(comm['up'])} with {how} "
                     f"({human_bytes(comm['up_uncompressed'])} uncompressed, {ratio:.1f}x smaller)"))
    else:
        rows.append(("up per client per round", f"{human_bytes(comm['up'])} (float32 update"
                     + (", plus its example-count weight" if comm["weight"] else "") + ")"))
    per_round = per_round_up = train.clients_per_round
    expected = expected_conditions(c, plan)
    if expected is not None:  # every selected client downloads; completed and surplus ones upload
        per_round = expected["selected"]
        per_round_up = expected["completed"] + expected.get("surplus", 0.0)
    total_down = comm["down"] * per_round * rounds
    total_up = comm["up"] * per_round_up * rounds
    rows.append(("total over the run", f"{human_bytes(total_down)} down, {human_bytes(total_up)} up"
                 + (" (expected, under the simulated conditions)" if expected is not None else "")
                 + (f" ({human_bytes(comm['up_uncompressed'] * per_round_up * rounds)} up uncompressed)"
                    if comm["up"] != comm["up_uncompressed"] else "")))
    if c.simulation is not None:
        from .check.simulation import describe_conditions, describe_expected

        rows.append(("simulation", describe_conditions(c.simulation, train.clients_per_round)))
        rows.extend(describe_expected(expected))
    p = c.privacy
    if p is None:
        rows.append(("privacy", "none (no privacy block): updates are not clipped or noised"))
    else:
        clip = f"clip {p.clip:g}" if p.clip is not None else \
            f"adaptive clip (quantile {p.adaptive['quantile']:g}, initial {p.adaptive['initial']:g})"
        noise = f"z = {p.noise_multiplier:g}" + (" (solved for the target)" if p.noise_solved else "")
        seeded = ", drawn from the spec's seed (repeatable; simulation only)" if p.seeded_noise else ""
        rows.append(("mechanism", f"Gaussian, {noise}, {clip}, noise added at the server{seeded}"))
        if c.simulation is not None:
            basis = (f"P(a client is selected) under the simulated availability and over-selection, "
                     f"population {p.population}; dropouts and deadlines are not credited")
        else:
            basis = f"{train.clients_per_round}/{p.population}"
        rows.append(("accounting", f"user-level, {p.accountant.upper()} accountant (dp-accounting), Poisson "
                                   f"sampling q = {p.sampling_rate:.4g} ({basis})"))
        eps_text = "∞" if p.epsilon == float("inf") else f"{p.epsilon:.4g}"
        rows.append((f"ε after {train.rounds} rounds", f"{eps_text} at δ = {p.delta:g}"
                     + (f" (not spent: the run stops after round {p.rounds_to_run})"
                        if p.rounds_to_run < train.rounds else "")))
        if p.epsilon_target is not None:
            if p.last_round_within is not None and p.last_round_within < train.rounds:
                crossed = f"crossed after round {p.last_round_within}"
            else:
                crossed = "not crossed"
            rows.append((f"target ε ≤ {p.epsilon_target:g}", f"{crossed}; on_exceed {p.on_exceed}"))
    if c.aggregation and c.aggregation.secure:
        lower, upper = c.aggregation.secure
        rows.append(("secure aggregation", f"sum of values clipped to [{lower:g}, {upper:g}]; simulated "
                                           "(TFF's test context runs the secure sum as a plain sum)"))
    return rows

