"""The simulation pass: simulated client conditions, and what they mean for the other blocks.

Types the `simulation { … }` block (a bare number for `available`, `speed` or `bandwidth` is
short for probability(p) / constant(v)), reads an availability trace, and checks the interplay:
a deadline needs a time model, fedsgd has no local steps to cut, min_clients must leave a robust
aggregator enough updates, and DP can only be accounted for availability it can bound.
"""

from __future__ import annotations

import math
from pathlib import Path

from .. import ast
from ..checked import AggregationConfig, DataConfig, SimulationConfig, TrainConfig
from ..diagnostics import Diagnostics, Span
from ..lib import simulation as simlib
from ..registry import SIMULATION_SETTINGS
from .attributes import check_attributes, split_attribute_forms, split_attribute_settings
from .data import resolve_data_path
from .settings import resolve_settings

_SHORTHAND = {"available": "probability", "speed": "constant", "bandwidth": "constant"}


def _expand_shorthand(setting: ast.Setting) -> ast.Setting:
    """`available 0.3` → `available probability(0.3)`; `speed 0.01` → `speed constant(0.01)`."""
    form = _SHORTHAND.get(setting.key.name)
    if form is None or not isinstance(setting.value, ast.Number):
        return setting
    value = setting.value
    call = ast.Call(ast.Name((form,), value.span), (ast.Arg(None, value, value.span),), value.span)
    return ast.Setting(setting.key, call, setting.span)


def _form_tuple(choice) -> tuple | None:
    """A resolved distribution as the tuple fedlang/lib/simulation.py reads."""
    if choice is None:
        return None
    return (choice.name, *(float(v) for v in choice.args.values()))


def check_simulation(block: ast.SimulationBlock, data: DataConfig, train: TrainConfig, seed: int,
                     base_dir: Path, diags: Diagnostics) -> SimulationConfig | None:
    before = len(diags.errors)
    attribute_lines, settings = split_attribute_settings(block.settings)
    attributes = check_attributes(attribute_lines, data, seed, base_dir, diags)
    by_attribute, settings = split_attribute_forms(settings, attributes or (), diags)  # `speed device(…)`
    settings = tuple(_expand_shorthand(s) for s in settings)
    s = resolve_settings("simulation", settings, SIMULATION_SETTINGS, block.span, diags)
    if len(diags.errors) > before:
        return None
    available = s["available"]
    trace_path = None
    if available.name == "probability":
        form: tuple = ("probability", float(available["p"]))
    elif available.name == "daily":
        a = available.args
        if a["mean"] + a["amplitude"] > 1 or a["mean"] - a["amplitude"] < 0:
            diags.warning("W620", f"daily(mean = {a['mean']:g}, amplitude = {a['amplitude']:g}) leaves [0, 1]: "
                                  "availability is clipped at the ends of the day", available.span,
                          "keep mean ± amplitude within [0, 1]")
        form = ("daily", float(a["mean"]), float(a["amplitude"]), int(a["period"]))
    elif available.name == "trace":
        path = resolve_data_path(available["path"], base_dir)
        try:
            trace, period = simlib.load_availability_trace(str(path))
        except FileNotFoundError:
            diags.error("E623", f"cannot read the availability trace {available['path']!r}: no such file",
                        available.span, f"paths are relative to the spec's folder ({base_dir.as_posix() or '.'})")
            return None
        except (OSError, ValueError) as exc:
            diags.error("E623", f"the availability trace is not usable: {exc}", available.span,
                        "a CSV with a header `client,round` and one row per available client and round")
            return None
        beyond = max(max(ids) for ids in trace.values())
        if beyond >= data.num_clients:
            diags.error("E623", f"the availability trace names client {beyond}, but there are only "
                                f"{data.num_clients} clients (ids 0…{data.num_clients - 1})", available.span,
                        "client ids in a trace are the partition's client indices")
            return None
        trace_path = str(path.resolve())
        form = ("trace", trace_path)
    else:
        form = ("always",)

    config = {
        "available": form,
        "over_select": float(s["over_select"]),
        "min_clients": s["min_clients"],
        "dropout": float(s["dropout"]),
        "speed": by_attribute.get("speed") or _form_tuple(s["speed"]),
        "bandwidth": by_attribute.get("bandwidth") or _form_tuple(s["bandwidth"]),
        "deadline": None if s["deadline"] is None else float(s["deadline"]),
        "stragglers": s["stragglers"],
        "straggler_fraction": float(s["straggler_fraction"]),
        "max_steps": s["max_steps"],
        "full_epochs_at": s["full_epochs_at"],
        "seed": seed,
    }
    if attributes:
        config["attributes"] = attributes
    for key in ("speed", "bandwidth"):
        choice = s[key]
        if choice is not None and choice.name == "uniform" and choice["low"] > choice["high"]:
            diags.error("E625", f"uniform(low, high) needs low ≤ high; got {choice['low']:g}, {choice['high']:g}",
                        choice.span, f"write `{key} uniform({choice['high']:g}, {choice['low']:g})`")
    if s["deadline"] is not None and config["speed"] is None:
        diags.error("E620", "a deadline needs a time model: how fast each device trains", s.key_span("deadline"),
                    "add e.g. `speed lognormal(median = 0.01, sigma = 0.8)` (seconds per example)")
    if config["bandwidth"] is not None and config["speed"] is None:
        diags.error("E620", "bandwidth needs a time model: how fast each device trains", s.key_span("bandwidth"),
                    "add e.g. `speed 0.01` (seconds per example)")
    if s["min_clients"] > train.clients_per_round:
        diags.error("E622", f"min_clients {s['min_clients']} is more than clients_per_round "
                            f"({train.clients_per_round}): every round would be abandoned", s.value_span("min_clients"),
                    f"use at most {train.clients_per_round}")
    if train.algorithm == "fedsgd":
        for key in ("straggler_fraction", "max_steps", "full_epochs_at"):
            if s.given(key):
                diags.error("E624", f"fedsgd takes one gradient per client per round: '{key}' does not apply",
                            s.key_span(key), "use fedavg or fedprox for local steps")
        if s["stragglers"] == "partial":
            diags.error("E624", "fedsgd takes one gradient per client per round: no partial work to keep",
                        s.value_span("stragglers"), "use `stragglers drop`, or fedavg/fedprox")
    if s.given("stragglers") and s["deadline"] is None and not s.given("straggler_fraction"):
        diags.warning("W622", f"`stragglers {s['stragglers']}` has no effect without a deadline or a "
                              "straggler_fraction", s.key_span("stragglers"),
                      "add `deadline <seconds>` (with a speed) or `straggler_fraction <share>`")
    if len(diags.errors) > before:
        return None
    probability = None
    if available.name in ("always", "probability"):
        p = 1.0 if available.name == "always" else float(available["p"])
        wanted = math.ceil(config["over_select"] * train.clients_per_round - 1e-9)
        probability = simlib.selection_probability(data.num_clients, p, min(wanted, data.num_clients))
    return SimulationConfig(available=available, config=config, trace_path=trace_path,
                            selection_probability=probability, lines=(block.span.line, block.span.end_line))


def check_simulation_interplay(sim: SimulationConfig, train: TrainConfig, aggregation: AggregationConfig | None,
                               attack, blocks, diags: Diagnostics) -> None:
    """Robust aggregators see only the completed clients; attacks assume every attacker takes part."""
    block: ast.SimulationBlock = blocks["simulation"]
    min_clients = sim.config["min_clients"]
    where = next((s.value.span for s in block.settings if s.key.name == "min_clients"),
                 Span(block.span.line, block.span.column, block.span.line, block.span.column + len("simulation")))
    choice = aggregation.aggregator if aggregation else None
    if choice is not None and choice.name in ("krum", "multi_krum") and min_clients <= 2 * choice["byzantine"] + 2:
        need = 2 * choice["byzantine"] + 3
        diags.error("E626", f"{choice.name} tolerates {choice['byzantine']} Byzantine client{'s' if choice['byzantine'] != 1 else ''} "
                            f"only with more than "
                            f"{need - 1} updates, but a round may go on with {min_clients} completed client"
                            f"{'s' if min_clients != 1 else ''} (min_clients)", where,
                    f"set `min_clients {need}` or more (clients_per_round {train.clients_per_round})")
    if choice is not None and choice.name == "trimmed_mean" and int(choice["fraction"] * min_clients) == 0:
        need = math.ceil(1 / choice["fraction"] - 1e-9) if choice["fraction"] > 0 else None
        diags.error("E626", f"trimmed_mean(fraction = {choice['fraction']:g}) trims nothing when a round goes on "
                            f"with {min_clients} completed client{'s' if min_clients != 1 else ''} (min_clients)",
                    where, f"set `min_clients {need}` or more" if need else "use a fraction > 0")
    if attack is not None:
        diags.error("E627", "an attack block cannot be combined with a simulation block yet",
                    Span(block.span.line, block.span.column, block.span.line, block.span.column + len("simulation")),
                    "attackers take part in every round; simulate the conditions without the attack")


def check_simulation_privacy(sim: SimulationConfig, privacy_block: ast.PrivacyBlock, population: int | None,
                             clients_per_round: int, blocks, diags: Diagnostics) -> float | None:
    """The sampling rate DP accounting may assume under the simulated selection, or None after an error."""
    block: ast.SimulationBlock = blocks["simulation"]
    if sim.selection_probability is None:
        setting = next(s for s in block.settings if s.key.name == "available")
        diags.error("E628", f"DP accounting cannot bound the participation of `available {sim.available.name}(…)`: "
                            "a client's chance of selection changes from round to round", setting.value.span,
                    "use `available <probability>` (accounted exactly), or drop the privacy block")
        return None
    if population is None:
        return sim.selection_probability
    p = 1.0 if sim.available.name == "always" else float(sim.available["p"])
    wanted = math.ceil(sim.config["over_select"] * clients_per_round - 1e-9)
    return simlib.selection_probability(population, p, min(wanted, population))


def expected_conditions(sim: SimulationConfig, sizes, clients_per_round: int, local_epochs: int, batch: int,
                        bytes_down: int, bytes_up: int, rounds: int) -> dict:
    """What the declared conditions give per round, drawn as the run draws them (the run's own
    per-round generators, for the first min(rounds, 200) rounds): mean available, selected and
    completed clients, participation, abandoned rounds, simulated round time (median, p95)."""
    import numpy as np

    config = simlib.prepare_simulation(dict(sim.config))
    sizes = np.asarray(sizes, dtype=np.int64)
    n = min(rounds, 200)
    outs = [simlib.simulate_round(np.random.default_rng([sim.config["seed"], r]), config, r, sizes, clients_per_round,
                                  local_epochs, batch, bytes_down, bytes_up) for r in range(1, n + 1)]
    times = [o["seconds"] for o in outs if o["seconds"] is not None]
    spreads = [simlib.participant_spread(config, o["clients"]) for o in outs]
    spread = {name: (float(np.mean([s[f"{name}_coverage"] for s in spreads])),
                     float(np.mean([s[f"{name}_entropy"] for s in spreads])))
              for name, *_ in config.get("attributes", ())}
    return {
        "spread": spread,
        "rounds": n,
        "available": float(np.mean([o["available"] for o in outs])),
        "selected": float(np.mean([o["selected"] for o in outs])),
        "completed": float(np.mean([o["completed"] for o in outs])),
        "participation": float(np.mean([o["participation"] for o in outs])),
        "straggling": float(np.mean([o["straggling"] for o in outs])),
        "surplus": float(np.mean([o["surplus"] for o in outs])),
        "abandoned": sum(o["abandoned"] for o in outs),
        "seconds_median": float(np.median(times)) if times else None,
        "seconds_p95": float(np.percentile(times, 95)) if times else None,
        "steps_fraction": float(np.sum([o["steps"].sum() for o in outs]) /
                                max(1, np.sum([(local_epochs * -(-sizes[o["clients"]] // batch)).sum()
                                               for o in outs]))),
    }


def describe_conditions(sim: SimulationConfig, clients_per_round: int) -> str:
    """One line: the declared conditions, in words."""
    c = sim.config
    form = c["available"]
    if form[0] == "probability":
        parts = [f"available with p = {form[1]:g}"]
    elif form[0] == "daily":
        parts = [f"daily availability {form[1]:g} ± {form[2]:g} (period {form[3]} rounds)"]
    elif form[0] == "trace":
        parts = ["availability from a trace"]
    else:
        parts = ["every client available"]
    if c["over_select"] > 1:
        wanted = math.ceil(c["over_select"] * clients_per_round - 1e-9)
        parts.append(f"over-select {wanted} for {clients_per_round}")
    if c["min_clients"] > 1:
        parts.append(f"abandon below {c['min_clients']}")
    if c["dropout"]:
        parts.append(f"dropout {c['dropout']:g}")
    if c["straggler_fraction"]:
        parts.append(f"{c['straggler_fraction']:.0%} stragglers with 1..E epochs")
    if c["deadline"] is not None:
        parts.append(f"deadline {c['deadline']:g} s")
    if c["deadline"] is not None or c["straggler_fraction"]:
        parts.append("stragglers " + ("keep partial work" if c["stragglers"] == "partial" else "dropped"))
    if c["max_steps"]:
        parts.append(f"at most {c['max_steps']} local steps")
    if c["full_epochs_at"]:
        parts.append(f"fewer epochs below {c['full_epochs_at']} examples")
    for key, unit in (("speed", "s per example"), ("bandwidth", "Mbit/s")):
        if c[key] is not None and c[key][0] == "attribute":
            parts.append(f"{key} by {c[key][1]} ({unit})")
    for name, kind, values, _ in c.get("attributes", ()):
        parts.append(f"attribute {name} ({len(values)} values{', from the data' if kind == 'column' else ''})")
    return ", ".join(parts)


def describe_expected(expected: dict | None) -> list[tuple[str, str]]:
    """Rows for `check` and `plan`: expected clients per round and simulated round time."""
    if expected is None:
        return [("expected", "client sizes are known only at run time (no expectation drawn)")]
    e = expected
    rows = [("expected per round",
             f"{e['available']:,.1f} available, {e['selected']:.1f} selected, {e['completed']:.2f} completed "
             f"(participation {e['participation']:.2f}); {e['abandoned']} of {e['rounds']} rounds abandoned; "
             f"{e['steps_fraction']:.0%} of the full local steps run")]
    if e.get("spread"):
        rows.append(("expected spread", "; ".join(f"{name}: coverage {c:.2f}, entropy {h:.2f}"
                                                   for name, (c, h) in e["spread"].items())))
    if e["seconds_median"] is not None:
        rows.append(("simulated round time", f"median {e['seconds_median']:.3g} s, p95 {e['seconds_p95']:.3g} s"))
    rows[-1] = (rows[-1][0], rows[-1][1] + f"  (drawn for rounds 1–{e['rounds']}, as the run draws them)")
    return rows
