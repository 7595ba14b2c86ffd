"""The privacy and aggregation passes: DP settings, the ε budget, and which options combine.

The ε of the declared run is computed here, before anything runs, with dp-accounting (through
fedlang/lib/privacy.py, the same functions the emitted program uses). dp-accounting is imported
only for specs that have a privacy block.
"""

from __future__ import annotations

from .. import ast
from ..checked import AggregationConfig, Choice, DataConfig, PrivacyConfig, TrainConfig
from ..diagnostics import Diagnostics, Span
from ..registry import AGGREGATION_SETTINGS, GATHERING_AGGREGATORS, PRIVACY_SETTINGS
from .settings import Settings, resolve_settings
from .values import INVALID


def _eps(x: float) -> str:
    return "∞" if x == float("inf") else f"{x:.3g}"


def _head(span: Span, word: str) -> Span:
    return Span(span.line, span.column, span.line, span.column + len(word))


def check_aggregation(block: ast.AggregationBlock, aggregates: dict, diags: Diagnostics,
                      declared: tuple[str, ...] = ()) -> AggregationConfig | None:
    """Type the aggregation block; `aggregator NAME` may name one of the spec's aggregate blocks
    (`declared`: every aggregate block's name, `aggregates`: those that checked)."""
    before = len(diags.errors)
    user = next((x for x in block.settings if x.key.name == "aggregator" and isinstance(x.value, ast.Name)
                 and x.value.text in declared), None)
    if user is not None and user.value.text not in aggregates:
        return None  # that aggregate block has errors of its own
    called = next((x for x in block.settings if x.key.name == "aggregator" and isinstance(x.value, ast.Call)
                   and x.value.name.text in declared), None)
    if called is not None:
        diags.error("E911", f"aggregate block '{called.value.name.text}' takes no options", called.value.span,
                    f"write `aggregator {called.value.name.text}`; put options inside the block's steps")
        return None
    settings = tuple(x for x in block.settings if x is not user)
    s = resolve_settings("aggregation", settings, AGGREGATION_SETTINGS, block.span, diags)
    if len(diags.errors) > before:
        return None
    aggregator: Choice | None = s["aggregator"]
    gathers = aggregator is not None and aggregator.name in GATHERING_AGGREGATORS
    if user is not None:
        aggregator = Choice(user.value.text, {}, user.value.span)
        gathers = "gather" in aggregates[user.value.text].helpers
    if aggregator is not None and s["secure"] is not None:
        why = ("it needs every client's update at the server, which a secure sum never reveals" if gathers
               else "a secure sum only adds; it cannot run another aggregator's steps")
        diags.error("E804", f"aggregator '{aggregator.name}' cannot be combined with secure aggregation: {why}",
                    aggregator.span, "drop `secure`, or the aggregator")
        return None
    if aggregator is not None and s["compress"] is not None:
        diags.error("E806", "compression cannot be combined with a custom aggregator yet", s.span("compress"),
                    "drop one of them")
        return None
    secure: Choice | None = s["secure"]
    bounds = None
    if secure is not None:
        bounds = (float(secure["lower"]), float(secure["upper"]))
        if bounds[0] >= bounds[1]:
            fix = (f"write the smaller bound first: `secure bounds({bounds[1]:g}, {bounds[0]:g})`"
                   if bounds[0] > bounds[1] else "e.g. `secure bounds(-1.0, 1.0)`")
            diags.error("E812", f"secure bounds need lower < upper; got lower {bounds[0]:g}, upper {bounds[1]:g}",
                        secure.span, fix)
            return None
    compress: Choice | None = s["compress"]
    if secure is not None and compress is not None:
        diags.error("E806", "compression cannot be combined with secure aggregation", s.span("compress"),
                    "the secure sum already encodes each value in a fixed integer range; drop one of them")
        return None
    return AggregationConfig(
        secure=bounds,
        quantize_bits=compress["bits"] if compress and compress.name == "quantize" else None,
        quantize_threshold=compress["threshold"] if compress else 0,
        lines=(block.span.line, block.span.end_line),
        aggregator=aggregator,
        sparsify=float(compress["fraction"]) if compress and compress.name == "topk" else None,
    )


def check_privacy(block: ast.PrivacyBlock, data: DataConfig, train: TrainConfig,
                  aggregation: AggregationConfig | None, train_block: ast.TrainBlock,
                  diags: Diagnostics, aggregation_block: ast.AggregationBlock | None = None,
                  simulated_rate=None) -> PrivacyConfig | None:
    """Type the privacy block, check it against training and aggregation, account ε.

    `simulated_rate(population)`: the sampling rate under a simulation block's selection
    (fedlang/check/simulation.py), or None after it reported why it cannot be accounted."""
    before = len(diags.errors)
    s = resolve_settings("privacy", block.settings, PRIVACY_SETTINGS, block.span, diags)
    if len(diags.errors) > before:
        return None
    _combinations(s, train, aggregation, train_block, aggregation_block, diags)
    population = s["population"] if s["population"] is not None else data.num_clients
    if population < train.clients_per_round:
        diags.error("E810", f"population {population} is smaller than clients_per_round "
                            f"({train.clients_per_round})", s.span("population"),
                    f"the population counts everyone who could be sampled, so it is at least "
                    f"{train.clients_per_round}; leave it out to use the {data.num_clients} clients of the data")
    if s["noise"] == "auto" and s["epsilon"] is None:
        diags.error("E809", "`noise auto` needs an epsilon target to solve for", s.span("noise"),
                    "add e.g. `epsilon 8.0`, or give a noise multiplier such as `noise 1.1`")
    if len(diags.errors) > before:
        return None
    if s["delta"] >= 1 / population:
        diags.warning("W802", f"delta {s['delta']:g} is not below 1/population (1/{population}): "
                              f"(ε, δ)-DP with such a δ can reveal a user outright", s.span("delta"),
                      f"use delta < {1 / population:.1e}")

    from ..lib import privacy as dp  # dp-accounting; no TensorFlow
    from .accounting import (MAX_PLD_POINTS, MAX_PLD_SOLVE_POINTS, PLDTooCostly, account, check_pld_solvable,
                             epsilon_function, solve_noise_multiplier)

    q = dp.sampling_rate(train.clients_per_round, population)
    if simulated_rate is not None:
        q = simulated_rate(population if s["population"] is not None else None)
        if q is None:
            return None
    delta, accountant, rounds = s["delta"], s["accountant"], train.rounds
    target = s["epsilon"]
    noise = s["noise"]
    try:
        if noise == "auto":
            if accountant == "pld":
                check_pld_solvable(target, rounds, q, delta)
            try:
                noise = solve_noise_multiplier(target, rounds, q, delta, accountant)
            except ValueError:
                most = epsilon_function(1000.0, q, delta, accountant)(rounds)
                diags.error("E813", f"no noise level meets the target ε ≤ {target:g} over {rounds} rounds: even "
                                    f"noise 1000 spends ε = {most:.3g} (δ = {delta:g}, q = {q:.4g}, "
                                    f"{accountant.upper()})", s.span("epsilon"),
                            "raise epsilon, or lower the rounds or clients_per_round (a larger population "
                            "lowers q too)")
                return None
        if noise == 0:
            diags.warning("W803", "noise 0 adds no noise: the run is not differentially private", s.span("noise"),
                          "use `noise auto` with an epsilon target, or a multiplier around 1")
            epsilon, first, last_within = float("inf"), float("inf"), (0 if target is not None else None)
        else:
            # ε at O(log rounds) round counts (fedlang/check/accounting.py), the values the run computes.
            accounted = account(rounds, noise, q, delta, accountant, target)
            epsilon, first, last_within = accounted.epsilon, accounted.first, accounted.last_within
    except PLDTooCostly as exc:
        tail = (f"with `accountant rdp`, `noise auto` would choose a noise multiplier of at most {exc.rdp_noise:g}" if exc.rdp_noise else
                f"the RDP accountant bounds ε by {_eps(epsilon_function(exc.noise, q, delta, 'rdp')(rounds))} here")
        solving = "solving `noise auto`: " if noise == "auto" else ""
        if exc.solving:
            what = (f"searching noise levels down to ~{exc.noise:.3g} (q = {q:.4g}) builds a privacy loss "
                    f"distribution of {exc.points:,.0f} points for each candidate, above the limit "
                    f"{MAX_PLD_SOLVE_POINTS:,}")
        else:
            what = (f"PLD accounting of {rounds} rounds at noise {exc.noise:g} (q = {q:.4g}) would compose a "
                    f"privacy loss distribution of {exc.points:.2g} points (each round adds a loss of "
                    f"~{exc.mean_loss:.3g}), above the limit {MAX_PLD_POINTS:.0e}")
        diags.error("E820", f"{solving}{what}; {tail}", s.span("noise"),
                    "use `accountant rdp`, fewer rounds, or a fixed noise multiplier with `accountant pld`"
                    if noise == "auto" else
                    "use `accountant rdp`, fewer rounds, or more noise (`noise auto` with an epsilon target)")
        return None
    except (ValueError, ArithmeticError) as exc:  # dp-accounting's own limits, past ours
        noise_text = "auto" if noise == "auto" else f"{noise:g}"
        diags.error("E819", f"the {accountant.upper()} accountant cannot compute ε for noise {noise_text}, "
                            f"q = {q:.4g}, δ = {delta:g} over {rounds} rounds: {exc}",
                    s.span("noise"),
                    "use a noise multiplier around 0.5 to 10 and a population within a few orders of "
                    "magnitude of clients_per_round, or the other accountant")
        return None
    rounds_to_run = rounds
    if target is not None and epsilon > target:
        crossing = f"ε passes {target:g} after round {last_within}"
        where = s.span("epsilon")
        policy = s["on_exceed"]
        first_text = _eps(first)
        if not last_within:
            crossing = f"the first round alone spends ε = {first_text}"
        if policy == "refuse":
            fix = (f"run at most {last_within} rounds, raise the noise (`noise auto` solves it), "
                   "or set `on_exceed stop` to stop at the last round within budget") if last_within else \
                  "raise the noise multiplier (`noise auto` solves for it) or the target"
            diags.error("E808", f"the run would spend ε = {_eps(epsilon)} (δ = {delta:g}, {accountant.upper()}) "
                                f"over {rounds} rounds, above the target {target:g}: {crossing}", where, fix)
            return None
        if policy == "stop":
            if not last_within:
                diags.error("E808", f"on_exceed stop cannot stop in time: the first round alone spends "
                                    f"ε = {first_text} (δ = {delta:g}, {accountant.upper()}), above the target "
                                    f"{target:g}", where,
                            "raise the noise multiplier (`noise auto` solves for it) or the target")
                return None
            rounds_to_run = last_within  # as declared: `fedlang plan` and the run say where it stops
        else:
            diags.warning("W804", f"the run will spend ε = {_eps(epsilon)} over {rounds} rounds, above the target "
                                  f"{target:g} ({crossing})", where)
    adaptive = s["clip"] if isinstance(s["clip"], Choice) else None
    if adaptive is not None and s["seeded_noise"]:
        diags.error("E818", "seeded noise needs a fixed clip", s.span("seeded_noise"),
                    "adaptive clipping draws noise inside TFF's quantile estimator, which takes no seed: "
                    "use a fixed `clip`, or remove `seeded_noise`")
        return None
    if adaptive is not None and noise >= 0.1 * train.clients_per_round:
        # TFF spends part of the budget on the clipped-count query (stddev 0.05·m); the rest must stay positive.
        diags.error("E817", f"adaptive clipping with noise {noise:g} needs more than {10 * noise:g} clients per "
                            f"round (TFF requires noise < 0.1 × clients_per_round)", s.span("clip"),
                    f"raise clients_per_round above {int(10 * noise)}, lower the noise, or use a fixed clip")
        return None
    return PrivacyConfig(
        noise_multiplier=float(noise),
        noise_solved=s["noise"] == "auto",
        clip=None if adaptive else s["clip"],
        adaptive=adaptive,
        epsilon_target=target,
        delta=delta,
        population=population,
        sampling_rate=q,
        accountant=accountant,
        on_exceed=s["on_exceed"],
        epsilon=epsilon,
        last_round_within=last_within,
        rounds_to_run=rounds_to_run,
        lines=(block.span.line, block.span.end_line),
        seeded_noise=s["seeded_noise"],
    )


def _combinations(s: Settings, train: TrainConfig, aggregation: AggregationConfig | None,
                  train_block: ast.TrainBlock, aggregation_block: ast.AggregationBlock | None,
                  diags: Diagnostics) -> None:
    """Which privacy options can be used together with the training and aggregation declared."""
    if train.algorithm == "fedsgd":
        diags.error("E801", "DP aggregation averages clipped updates uniformly; fedsgd weights them by "
                            "example count", train_block.algorithm.span,
                    "use `train fedavg { local_epochs 1 … }` with the privacy block")
    elif any(x.key.name == "weighting" for x in train_block.settings) and train.weighting == "examples":
        span = next(x.value.span for x in train_block.settings if x.key.name == "weighting")
        diags.error("E801", "DP aggregation is unweighted: each client's clipped update counts once", span,
                    "remove `weighting examples` (a privacy block implies `weighting uniform`)")
    if s["noise_at"] == "clients":
        if aggregation is None or aggregation.secure is None:
            diags.error("E802", "noise added at the clients needs secure aggregation", s.span("noise_at"),
                        "without a secure sum the server sees every client's update with only its share of "
                        "the noise; add `aggregation { secure bounds(…) }` or use `noise_at server`")
        else:
            diags.error("E803", "distributed DP (noise at the clients) is not supported yet", s.span("noise_at"),
                        "use `noise_at server`: the server adds the noise to the secure sum")
    if aggregation is not None and aggregation.quantize_bits is not None:
        compress = (next((x for x in aggregation_block.settings if x.key.name == "compress"), None)
                    if aggregation_block is not None else None)
        diags.error("E807", "compression cannot be combined with a privacy block yet",
                    compress.span if compress is not None else s.block_span,
                    f"DP clips and noises the float32 updates, and quantizing them is not supported: remove "
                    f"`compress`, or the privacy block (line {s.block_span.line})")
    if aggregation is not None and aggregation.aggregator is not None:
        diags.error("E807", f"aggregator '{aggregation.aggregator.name}' cannot be combined with a privacy block yet",
                    aggregation.aggregator.span, "DP replaces the model aggregator; remove one of them")
    if aggregation is not None and aggregation.secure is not None:
        clip = s["clip"]
        if isinstance(clip, Choice):
            diags.error("E805", "adaptive clipping cannot be used with secure aggregation", s.span("clip"),
                        "the clip norm changes every round, but the secure sum's bounds are fixed; "
                        "use a fixed `clip`")
        elif clip is not INVALID:
            lower, upper = aggregation.secure
            if min(-lower, upper) < clip:
                diags.warning("W801", f"secure bounds [{lower:g}, {upper:g}] are narrower than the clip norm "
                                      f"{clip:g}: coordinates outside them are clipped again, biasing the sum",
                              s.span("clip"), f"use `secure bounds({-clip:g}, {clip:g})` or wider")
