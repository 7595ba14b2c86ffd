"""What `fedlang check` prints about a valid spec (computed without TensorFlow)."""

from __future__ import annotations

import statistics

from .checked import CheckedSpec
from .plan import Plan
from .report import expected_conditions


def _n(x: int) -> str:
    return f"{x:,}"


def summary_lines(c: CheckedSpec, plan: Plan, show_types: bool = False) -> list[tuple[str, str]]:
    """(label, text) rows describing the experiment a spec declares (its checked form and plan)."""
    model, data, train = c.model, c.data, c.train
    rows: list[tuple[str, str]] = []
    kinds = ", ".join(layer.kind for layer in model.layers)
    rows.append(("model", f"{model.name}: {len(model.layers)} layer{'s' if len(model.layers) != 1 else ''} ({kinds}), "
                          f"{_n(model.param_count)} parameters ({model.param_count * 4 / 1024:.1f} KiB as float32)"))
    facts, sizes = data.facts, data.client_sizes
    if facts.examples is not None:
        central = (data.test["fraction"] if data.test.name == "holdout" else
                   data.test["holdout"] if data.test.name == "per_client" else 0)
        test = round(central * facts.examples)
        split = f" ({_n(facts.examples - test)} train / {_n(test)} test)" if test else ""
        rows.append(("data", f"{facts.description}: {_n(facts.examples)} examples{split}, "
                             f"examples of shape {list(data.feature_shape)}, {facts.classes} classes"))
    else:
        drawn = f"{_n(sum(sizes))} training examples" if sizes else "size drawn at run time"
        rows.append(("data", f"{facts.description}: examples of shape {list(data.feature_shape)}, "
                             f"{facts.classes} classes ({drawn})"))
    if sizes:
        per_client = (f"training examples per client: min {_n(min(sizes))}, median {statistics.median(sizes):,g}, "
                      f"max {_n(max(sizes))}")
    elif facts.examples is not None:
        per_client = f"{(facts.examples - test) / data.num_clients:.1f} training examples per client on average"
    else:
        per_client = "sizes drawn at run time"
    rows.append(("clients", f"{_n(data.num_clients)} ({data.partition.text()}); {per_client}"))
    from .check.personalize import describe_client_tests, describe_evaluation

    client_tests = describe_client_tests(data)
    if client_tests is not None:
        rows.append(("client test sets", client_tests))
    sampled = (f"{train.clients_per_round} of {data.num_clients} clients per round"
               if train.clients_per_round < data.num_clients else "all clients every round")
    opt = (f"server {train.server_optimizer.text()}" if train.algorithm == "fedsgd" else
           f"{train.local_epochs} local epoch{'s' if train.local_epochs > 1 else ''}, batch {data.batch}, "
           f"client {train.client_optimizer.text()}, server {train.server_optimizer.text()}")
    extra = f", mu={train.mu:g}" if train.mu is not None else ""
    weighting = "" if train.algorithm == "fedsgd" else f", {train.weighting}-weighted"
    rounds = f"{train.rounds} round{'s' if train.rounds != 1 else ''}"
    rows.append(("training", f"{train.algorithm}{extra}{weighting}: {rounds}, {sampled}; {opt}"))
    if plan.schedules is not None:
        from .lib.schedules import learning_rate_at

        for side in ("client", "server"):
            schedule = plan.schedules[side]
            if schedule is not None:
                rates = ", ".join(f"round {r}: {learning_rate_at(schedule, r):.4g}"
                                  for r in sorted({1, (train.rounds + 1) // 2, train.rounds}))
                rows.append((f"{side} learning rate", f"{schedule[0]} — {rates}"))
    path, why = plan.execution
    rows.append(("execution", f"{'fused' if path == 'fused' else 'per-client'} — {why}"))
    if c.evaluate and data.central_test:
        rows.append(("evaluate", f"every {c.evaluate.every} round{'s' if c.evaluate.every > 1 else ''} "
                                 f"(and after the last) on the test set"))
    rows.extend(describe_evaluation(c))
    if c.privacy is not None:
        p = c.privacy
        target = f"; target ε ≤ {p.epsilon_target:g}" if p.epsilon_target is not None else ""
        seeded = "; noise seeded from the spec" if p.seeded_noise else ""
        rows.append(("privacy", f"ε = {p.epsilon:.4g} at δ = {p.delta:g} after {train.rounds} rounds "
                                f"({p.accountant.upper()}, z = {p.noise_multiplier:g}, q = {p.sampling_rate:.4g})"
                                f"{target}{seeded} — `fedlang plan` for details"))
    if c.aggregation and c.aggregation.secure:
        rows.append(("aggregation", "secure sum within [{:g}, {:g}] (simulated)".format(*c.aggregation.secure)))
    if c.round is not None:
        rows.append(("aggregation", "round (round block, unweighted)"))
    elif c.aggregation and c.aggregation.aggregator:
        choice = c.aggregation.aggregator
        kind = "aggregate block" if choice.name in c.aggregates else "library aggregator"
        rows.append(("aggregation", f"{choice.text()} ({kind}, unweighted)"))
    if c.attack is not None:
        rows.append(("attack", f"{c.attack.clients} client(s) (ids 0…{c.attack.clients - 1}) in every round, "
                               f"updates scaled ×{c.attack.scale:g}"))
    if c.aggregation and c.aggregation.quantize_bits:
        rows.append(("aggregation", f"updates quantized to {c.aggregation.quantize_bits} bits"))
    if c.aggregation and c.aggregation.sparsify:
        rows.append(("aggregation", f"updates sparsified: the top {c.aggregation.sparsify:g} of each tensor's entries"))
    if c.simulation is not None:
        from .check.simulation import describe_conditions, describe_expected

        rows.append(("simulation", describe_conditions(c.simulation, train.clients_per_round)))
        rows.extend(("  " + label, text) for label, text in describe_expected(expected_conditions(c, plan)))
    if c.monitor is not None:
        m = c.monitor
        alerts = "; ".join(f"{a['text']} -> {a['action']}" for a in m.alerts) or "no alerts"
        rows.append(("monitor", f"checkpoint every {m.checkpoint_every} rounds; {alerts}"))
        for alert in m.alerts:
            if "adjust" in alert:  # a privacy-budget action (fedlang/check/budget.py)
                from .check.budget import describe_adjustment

                rows.append((f"  {alert['action']}", describe_adjustment(alert, c)))
    if model.has_local_layers:
        from .check.personalize import describe_local_layers, fedper_round_signature

        rows.append(("local layers", describe_local_layers(model)))
        rows.append(("round type", fedper_round_signature(model, plan.client_data_type) + "  (TFF notation, FedPer)"))
    else:
        rows.append(("round type", plan.round_signature + "  (TFF notation; optimizer and aggregator state elided)"))
    if show_types:
        d = model.param_count
        for name, config in c.aggregates.items():
            rows.append((f"aggregate {name}", f"{config.param}: {{float32[{d}]}}@CLIENTS -> float32[{d}]@SERVER"))
            rows.extend((f"  line {s.line}", f"{s.target or 'return'}: {s.type.notation(d)}") for s in config.steps)
        if c.round is not None:  # model and data are FedAvg's own; its implicit `return delta` is not a line
            rows.append(("round", "model: float32[{0}]@SERVER, data: {{<x,y>*}}@CLIENTS".format(d)))
            typed = [(s.line, s.target, s.type) for s in c.round.aggregate.steps if s.target is not None]
            for line, target, type_ in sorted(typed + list(c.round.frame), key=lambda t: t[0]):
                rows.append((f"  line {line}", f"{target}: {type_.notation(d)}"))
        if model.has_local_layers:
            signature = fedper_round_signature(model, plan.client_data_type)
            shared = signature[len("(<shared="):signature.index(",local=")]
            local = signature[signature.index(",local=") + len(",local="):signature.index(",client_data=")]
            rows.append(("federated weights", shared))
            rows.append(("local weights", local + "  (each client's own; never leave it)"))
        else:
            rows.append(("model weights", f"{plan.model_weights_type}@SERVER"))
        rows.append(("client data", plan.client_data_type))
        for layer in model.layers:
            where = "local: stays on each client" if layer.local is not None else "federated"
            rows.append((f"  line {layer.line}", f"{layer.kind}: {list(layer.input_shape)} -> "
                                                 f"{list(layer.output_shape)}, {_n(layer.params)} parameters"
                                                 + (f" ({where})" if model.has_local_layers else "")))
    return rows
