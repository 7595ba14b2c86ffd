"""The monitor block: checkpoint interval and alerts, validated against the metrics a run reports.

Every alert names a metric the run really writes into its rows (so the checker knows the
names from the other blocks), a threshold that can be crossed, and an action. The result is
a `MonitorConfig` whose alerts are plain dicts: the emitted program's `Monitor`
(fedlang/lib/monitor.py) evaluates them after every round.
"""

from __future__ import annotations

from .. import ast
from ..checked import MonitorConfig
from ..diagnostics import Diagnostics, Source, did_you_mean
from .budget import BUDGET_ACTIONS, plan_budget_action

DEFAULT_CHECKPOINT_EVERY = MonitorConfig.checkpoint_every
ACTIONS = ("warn", "stop", "checkpoint", "lower_rate", "raise_noise")  # the last two: fedlang/check/budget.py
FRACTION_METRICS = ("accuracy", "auc", "precision", "recall", "participation", "coverage", "entropy")  # in [0, 1]


def round_metrics(checked) -> dict[str, str]:
    """{metric name: what it is} for every value a round's row holds, given the checked blocks."""
    names = ("loss",) + tuple(checked.model.metrics)
    metrics = {f"train_{m}": f"training {m} (mean over the round's clients)" for m in names}
    if checked.evaluate is not None and checked.data.central_test:
        metrics.update({f"eval_{m}": f"{m} on the held-out test set (every {checked.evaluate.every} rounds)"
                        for m in names})
    if checked.evaluate is not None and checked.data.per_client_test is not None:
        from .personalize import client_round_metrics

        metrics.update(client_round_metrics(checked))
    metrics["clients"] = "clients sampled this round"
    metrics["seconds"] = "wall-clock duration of the round"
    metrics["bytes_down"] = "bytes sent to the round's clients"
    metrics["bytes_up"] = "bytes the round's clients sent"
    metrics["update_norm_mean"] = "mean L2 norm of the clients' model updates (before clipping or noise)"
    metrics["update_norm_max"] = "largest L2 norm of a client's model update (before clipping or noise)"
    sim = getattr(checked, "simulation", None)  # a simulation block's per-round client conditions
    if sim is not None:
        metrics.update({"available": "clients available this round", "selected": "clients selected",
                        "completed": "selected clients that completed training",
                        "dropped": "selected clients that dropped out",
                        "straggling": "selected clients that missed the deadline",
                        "participation": "completed / selected"})
        if sim.config.get("over_select", 1) > 1:
            metrics["surplus"] = "completed clients beyond the ones needed"
        if sim.config.get("speed") is not None:
            metrics["sim_seconds"] = "simulated duration of the round"
        for name, _, values, _ in sim.config.get("attributes", ()):  # the participants' spread (client attributes)
            metrics.update({f"{name}_{v}": f"participants whose {name} is {v}" for v in values})
            metrics[f"{name}_coverage"] = f"share of the {name} values among the participants"
            metrics[f"{name}_entropy"] = f"evenness of the participants over {name} (entropy / log of its values)"
    p = checked.privacy
    if p is not None:
        metrics["epsilon"] = "ε spent so far"
        if p.epsilon_target is not None:
            metrics["epsilon_remaining"] = "ε target minus ε spent"
        if p.clip is None:
            metrics["clip"] = "the adaptive clip norm"
    if checked.aggregation is not None and checked.aggregation.secure:
        metrics["clipped_clients"] = "clients whose values the secure sum's bounds clipped"
    return metrics


def check_monitor(block: ast.MonitorBlock, checked, source: Source, diags: Diagnostics) -> MonitorConfig | None:
    """Validate a monitor block against the metrics the checked spec's rows will hold."""
    before = len(diags.errors)
    metrics = round_metrics(checked)
    every, alerts, seen_checkpoint = DEFAULT_CHECKPOINT_EVERY, [], None
    rounds = checked.train.rounds
    for item in block.items:
        if isinstance(item, ast.MonitorCheckpoint):
            if seen_checkpoint is not None:
                diags.error("E971", "a monitor block has one `checkpoint every` line", item.span,
                            f"the first one is on line {seen_checkpoint}")
                continue
            seen_checkpoint = item.span.line
            value = item.every
            if not isinstance(value, ast.Number) or not isinstance(value.value, int) or value.value < 1:
                diags.error("E972", "`checkpoint every` needs a whole number of rounds, at least 1", value.span,
                            "e.g. `checkpoint every 5`")
                continue
            every = value.value
            continue
        alert = _check_alert(item, metrics, checked, rounds, source, diags)
        if alert is not None and alert["action"] in BUDGET_ACTIONS:
            alert = _check_budget_action(item, alert, checked, [a for a in alerts if "adjust" in a], diags)
        if alert is not None:
            alerts.append(alert)
    if len(diags.errors) > before:
        return None
    lines = tuple((n, source.lines(n, n)[0]) for n in range(block.span.line, block.span.end_line + 1))
    return MonitorConfig(every, tuple(alerts), lines, declares_checkpoints=seen_checkpoint is not None)


def _check_alert(item: ast.Alert, metrics: dict[str, str], checked, rounds: int, source: Source,
                 diags: Diagnostics) -> dict | None:
    action = item.action.name
    ok = True
    if action not in ACTIONS:
        hint = did_you_mean(action, ACTIONS) or f"use one of: {', '.join(ACTIONS)}"
        diags.error("E973", f"unknown alert action '{action}'", item.action.span, hint)
        ok = False
    text = _alert_text(item, source)
    if item.kind == "nan":
        return {"kind": "nan", "metric": None, "action": action, "text": text} if ok else None
    metric = item.metric.name
    if metric not in metrics:
        ok = False
        if metric.startswith("eval_") and metric.replace("eval_", "train_", 1) in metrics:
            hint = ("eval metrics need an evaluate block and test data" if checked.evaluate is None
                    or checked.data.test.name == "none" else None)
        elif metric in ("participation", "available", "selected", "completed", "dropped"):
            hint = ("participation figures come from a simulation block (without one, every selected client "
                    "completes every round)")
        elif metric in ("epsilon", "epsilon_remaining"):
            hint = ("ε is measured only with a privacy block" if checked.privacy is None
                    else "epsilon_remaining needs an `epsilon` target in the privacy block")
        else:
            hint = None
        hint = hint or did_you_mean(metric, metrics) or f"metrics of this run: {', '.join(metrics)}"
        diags.error("E974", f"unknown metric '{metric}': the run does not report it", item.metric.span, hint)
    value = item.value
    if not isinstance(value, ast.Number):
        diags.error("E975", "an alert threshold must be a number", value.span,
                    "e.g. `alert train_loss > 5 -> stop`")
        return None
    if item.kind == "not_improving":
        if item.unit.name not in ("rounds", "round"):
            diags.error("E976", f"expected 'rounds' after the count, not '{item.unit.name}'", item.unit.span,
                        f"write `not improving for {value.text} rounds`")
            ok = False
        if not isinstance(value.value, int) or value.value < 1:
            diags.error("E975", "`not improving for N rounds` needs a whole number N ≥ 1", value.span, None)
            ok = False
        elif value.value >= rounds:
            diags.warning("W971", f"this alert can never fire: the run has {rounds} rounds", value.span,
                          f"use fewer than {rounds} rounds")
        by = 0.0
        if item.by is not None:
            if not isinstance(item.by, ast.Number) or item.by.value < 0:
                diags.error("E975", "`not improving by X` needs a number X ≥ 0", item.by.span,
                            "e.g. `not improving by 0.01 for 20 rounds`")
                ok = False
            else:
                by = float(item.by.value)
        if not ok:
            return None
        return {"kind": "not_improving", "metric": metric, "rounds": value.value, "by": by, "action": action,
                "text": text}
    threshold = float(value.value)
    fraction = None
    if item.unit is not None:  # `epsilon > 0.9 of target`
        if item.unit.name != "target":
            diags.error("E976", f"expected 'target' after 'of', not '{item.unit.name}'", item.unit.span,
                        "write e.g. `alert epsilon > 0.9 of target -> stop`")
            return None
        if metric != "epsilon":
            diags.error("E977", "`of target` is for epsilon: a fraction of the privacy block's ε target",
                        item.unit.span, f"compare {metric} with a number instead")
            return None
        if checked.privacy is None or checked.privacy.epsilon_target is None:
            diags.error("E977", "`of target` needs an `epsilon` target in the privacy block", item.unit.span,
                        "add `epsilon 3.0` to the privacy block, or compare with a number")
            return None
        if not 0 < threshold <= 1:
            diags.error("E975", f"a fraction of the ε target must be in (0, 1], got {value.text}", value.span,
                        "e.g. `0.9 of target`")
            return None
        fraction, threshold = threshold, threshold * checked.privacy.epsilon_target
    elif ok:
        bounded = metric in FRACTION_METRICS or any(metric.endswith("_" + m) for m in FRACTION_METRICS)
        op = item.op.name
        never = (bounded and ((op == "<" and threshold <= 0) or (op == "<=" and threshold < 0)
                              or (op == ">" and threshold >= 1) or (op == ">=" and threshold > 1)))
        if never:
            diags.error("E975", f"{metric} is between 0 and 1, so `{metric} {op} {value.text}` can never hold",
                        value.span, "use a threshold between 0 and 1")
            ok = False
    if not ok:
        return None
    return {"kind": "threshold", "metric": metric, "op": item.op.name, "threshold": threshold, "fraction": fraction,
            "action": action, "text": text}


def _alert_text(item: ast.Alert, source: Source) -> str:
    """The alert's condition in canonical spelling (messages, alerts.jsonl), e.g. `train_loss < 2.0`."""
    if item.kind == "nan":
        return "nan"
    value = item.value.text if isinstance(item.value, ast.Number) else "?"
    if item.kind == "not_improving":
        by = f" by {item.by.text}" if isinstance(item.by, ast.Number) else ""
        return f"{item.metric.name} not improving{by} for {value} rounds"
    return f"{item.metric.name} {item.op.name} {value}" + (" of target" if item.unit is not None else "")


def _check_budget_action(item: ast.Alert, alert: dict, checked, earlier: list[dict], diags: Diagnostics) -> dict | None:
    """`-> lower_rate` / `-> raise_noise`: on an ε alert of a fixed-clip privacy block with a target,
    once per monitor block, and only where dp-accounting proves the target still holds."""
    action, p = alert["action"], checked.privacy
    where = item.action.span
    if alert["kind"] != "threshold" or alert["metric"] not in ("epsilon", "epsilon_remaining"):
        diags.error("E978", f"`{action}` changes the DP mechanism when the privacy budget runs low: it needs an "
                            "alert on epsilon or epsilon_remaining", where,
                    f"e.g. `alert epsilon > 0.5 of target -> {action}`")
        return None
    if p is None or p.epsilon_target is None:
        diags.error("E978", f"`{action}` keeps the ε target: the privacy block needs an `epsilon` target", where,
                    "add e.g. `epsilon 8` to the privacy block")
        return None
    if p.clip is None:
        diags.error("E978", f"`{action}` needs a fixed clip: adaptive clipping spends part of the noise on its "
                            "quantile estimate", where, "use `clip 1.0` (a number) in the privacy block")
        return None
    if earlier:
        diags.error("E978", "a monitor block has one alert that changes the DP mechanism", where,
                    f"keep one of `{earlier[0]['text']} -> {earlier[0]['action']}` and this one")
        return None
    if p.accountant == "pld":
        from .accounting import epsilon_function
        from .budget import MAX_BUDGET_PLD_POINTS

        points, _ = epsilon_function(p.noise_multiplier, p.sampling_rate, p.delta, "pld").points(  # type: ignore[attr-defined]
            checked.train.rounds)
        if points > MAX_BUDGET_PLD_POINTS:
            diags.error("E820", f"`{action}` with `accountant pld`: the privacy loss distribution of the "
                                f"{checked.train.rounds} rounds has ~{points:,.0f} points, and finding the change "
                                f"composes it about 15 times; the limit for budget actions is "
                                f"{MAX_BUDGET_PLD_POINTS:,}", where,
                        "use `accountant rdp` (it plans budget actions at any number of rounds), fewer rounds, "
                        "or more noise")
            return None
    adjust, problem = plan_budget_action(checked, alert)
    if adjust is None:
        diags.error("E979", f"`{action}` cannot keep ε within the target: {problem}", where,
                    "fire the alert earlier (a smaller fraction of the target), or use the other action"
                    if action == "raise_noise" else "fire the alert earlier, or raise the noise instead")
        return None
    return dict(alert, adjust=adjust)
