"""The standalone program's run directory and checkpoints, and the alerts of a ``monitor`` block.

RunLog: ``python program.py --out DIR`` writes metrics.jsonl and alerts.jsonl. RunDirectory, for a
spec that declares checkpoints, adds checkpoints and resume
with TFF's own ``tff.program.FileProgramStateManager``, which writes each checkpoint to a
temporary directory and renames it (a kill never leaves half of one); a checkpoint that does not
load, or holds a state of other shapes (another model), stops the program with a message saying
so, before any file is touched; none is deleted. ``fedlang run`` writes the full
run directory itself, with the same hook and SHA-256-checked checkpoints
(fedlang/runtime/checkpoints.py: RunCheckpoints). Nothing besides the server state and the rows
needs saving to repeat a run exactly: each round's client sample and shuffles come from
``np.random.default_rng([SEED, round])``, and seeded DP noise keeps its RNG counter inside the
server state.

Alerts: each alert is a dict (``metric``, ``kind``, ``op``, ``threshold``, ``rounds``, ``by``,
``fraction``, ``action``, ``text``); ``Monitor.observe(row)`` returns the alerts that fire after a
round. An alert fires in the first round its condition holds, and again only after the
condition has stopped holding in between.

Like the other modules of fedlang/lib, this is copied into the programs fedlang generates (only
the definitions a spec uses; standard library, numpy, TensorFlow and TFF only). ``REQUIRES`` at
the bottom maps each name to the helpers of this module it uses.
"""

import asyncio
import collections
import json
import math
import os
import signal
import sys

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


# ---------------------------------------------------------------------------------------------
# The standalone program's run directory
# ---------------------------------------------------------------------------------------------

class RunLog:
    """The standalone program's run harness: `on_round` prints each round's row and, with `--out DIR`,
    writes it to DIR/metrics.jsonl (`add`: alerts.jsonl; the first round's row replaces an earlier
    run's files, and a folder with checkpoints is refused). `with RunLog(...)`: a NaN/inf round
    exits 1 saying why (as `fedlang run` does), Ctrl-C and SIGTERM exit 130."""

    def __init__(self, out_dir, fresh=True):  # fresh: a new run, not one resuming from its checkpoints
        self.out_dir, self.stopping, self.fresh = out_dir, False, fresh
        if fresh and out_dir and os.path.exists(os.path.join(out_dir, "checkpoints")):  # fedlang run's, or a resumable program's
            raise SystemExit(f"error: {out_dir} holds checkpoints of another run; give this program another --out")

    def on_round(self, row):
        shown = "  ".join(f"{k} {v:.6f}" for k, v in row.items()
                          if k not in ("round", "clients", "seconds", "bytes_down", "bytes_up"))
        try:
            print(f"round {row['round']:4d}  {shown}  ({row['seconds']:.2f} s)", flush=True)
        except BrokenPipeError:  # `python program.py | head`: the reader has gone; end without a traceback
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's own advice)
            raise SystemExit(1) from None
        self.add("metrics.jsonl", row)
        if self.stopping:  # an interrupt that TensorFlow swallowed (in a finalizer): stop after this round
            raise KeyboardInterrupt

    def add(self, name, item):
        if self.out_dir:
            os.makedirs(self.out_dir, exist_ok=True)
            for old in ("metrics.jsonl", "alerts.jsonl") if self.fresh else ():  # an earlier run's
                if os.path.exists(os.path.join(self.out_dir, old)):
                    os.remove(os.path.join(self.out_dir, old))
            self.fresh = False
            with open(os.path.join(self.out_dir, name), "a") as f:
                f.write(json.dumps(item) + "\n")

    def interrupted(self):  # what Ctrl-C or SIGTERM prints (after a checkpoint, in a subclass that saves one)
        return "interrupted"

    def interrupt(self, signum, frame):
        self.stopping = True
        raise KeyboardInterrupt

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):  # SIGTERM: a scheduler preempting the job, like Ctrl-C
            signal.signal(signum, self.interrupt)
        return self

    def __exit__(self, kind, error, traceback):
        if kind and kind.__name__ == "NonFiniteRound":  # fedlang/lib/faults.py: exit 1 saying why
            raise SystemExit(f"stopped: {error}") from None
        if kind and issubclass(kind, KeyboardInterrupt):
            print(self.interrupted(), file=sys.stderr, flush=True)
            raise SystemExit(130) from None


class RunDirectory(RunLog):
    """A RunLog that, as train()'s `checkpoints` hook, also saves TFF FileProgramStateManager
    checkpoints in DIR/checkpoints every `every` rounds, when train() says one is due and on Ctrl-C or
    SIGTERM (the last completed round); a second start resumes from the newest. Programs whose spec
    declares checkpoints (a monitor block's `checkpoint every k` or `-> checkpoint`) use it."""

    def __init__(self, out_dir, every):
        super().__init__(out_dir, fresh=False)  # restore() keeps the rows up to the checkpoint
        self.every, self.last, self.saved = every, None, None
        self.manager = out_dir and tff.program.FileProgramStateManager(os.path.join(out_dir, "checkpoints"),
                                                                       keep_total=3, keep_first=False)

    def restore(self, state):
        """(round, state, rows) of the newest checkpoint, or None; the files keep only its rounds."""
        if not self.out_dir:
            return None
        try:
            saved, version = asyncio.run(self.manager.load_latest({"state": state, "rows": ""}))  # version 0: none
        except (TypeError, ValueError) as exc:  # before touching the files: nothing is lost
            raise SystemExit(f"error: the newest checkpoint in {self.out_dir} does not load ({type(exc).__name__}): it "
                             "is damaged or holds another program's state; use another --out, or remove it") from None
        if saved is not None and [np.shape(v) for v in tf.nest.flatten(saved["state"])] != [
                np.shape(v) for v in tf.nest.flatten(state)]:  # TFF loads a state of other shapes silently
            raise SystemExit(f"error: the checkpoint of round {version} in {self.out_dir} holds another program's "
                             "state (another model or algorithm); use another --out, or delete its checkpoints folder")
        for name in ("metrics.jsonl", "alerts.jsonl"):  # drop what a stopped run wrote after its checkpoint
            path = os.path.join(self.out_dir, name)
            lines = open(path).readlines() if os.path.exists(path) else []
            with open(path, "w") as f:
                f.writelines(line for line in lines if json.loads(line)["round"] <= version)
        if saved is None:
            return None
        print(f"resumed from the checkpoint of round {version}", flush=True)
        self.saved = version
        return version, saved["state"], json.loads(saved["rows"])

    def completed(self, round_num, state, rows, due):
        self.last = (round_num, state, list(rows))  # a copy: train() appends the next row before on_round
        if due or (self.every and round_num % self.every == 0):
            self.save()

    def save(self):
        """Checkpoint the last completed round (once); returns the newest checkpoint's round or None."""
        if self.out_dir and self.last and self.last[0] != self.saved:
            self.write(*self.last)
            self.saved = self.last[0]
        return self.saved

    def write(self, round_num, state, rows):
        asyncio.run(self.manager.save({"state": state, "rows": json.dumps(rows)}, round_num))

    def interrupted(self):
        saved = self.save()
        return "interrupted" + (f"; the checkpoint of round {saved} is in {self.out_dir}: run again to resume"
                                if saved else "")


# ---------------------------------------------------------------------------------------------
# Alerts
# ---------------------------------------------------------------------------------------------


def lower_is_better(metric):
    """Losses, durations, bytes and norms improve downwards; accuracy, AUC, precision, recall up."""
    return any(part in metric for part in ("loss", "seconds", "bytes", "norm", "epsilon"))


class Monitor:
    """Evaluates a monitor block's alerts after each round (see the module docstring)."""

    def __init__(self, alerts, epsilon_target=None):
        self.alerts = list(alerts)
        self.epsilon_target = epsilon_target
        self.holding = [False] * len(self.alerts)
        self.best = [None] * len(self.alerts)  # (value, round) for "not improving"
        self.fired = []
        self.stopped = None

    def _holds(self, index, alert, row):
        kind = alert["kind"]
        if kind == "nan":
            return any(isinstance(v, float) and not math.isfinite(v) for v in row.values())
        value = row.get(alert["metric"])
        if value is None:
            return None  # not measured this round: the alert keeps its state
        value = float(value)
        if kind == "threshold":
            threshold = alert["threshold"]
            if alert.get("fraction") is not None:
                threshold = alert["fraction"] * self.epsilon_target
            return {"<": value < threshold, "<=": value <= threshold, ">": value > threshold,
                    ">=": value >= threshold}[alert["op"]]
        if kind == "not_improving":
            best, by = self.best[index], alert.get("by", 0.0)
            better = best is None or (value < best[0] - by if lower_is_better(alert["metric"]) else value > best[0] + by)
            if better:
                self.best[index] = best = (value, row["round"])
            return row["round"] - best[1] >= alert["rounds"]
        raise ValueError(f"unknown alert kind {kind!r}")

    def observe(self, row):
        """The alerts that fire after this round (each a dict ready for alerts.jsonl)."""
        fired = []
        for index, alert in enumerate(self.alerts):
            holds = self._holds(index, alert, row)
            if holds is None:
                continue
            if holds and not self.holding[index]:
                event = {"round": row["round"], "alert": alert["text"], "action": alert["action"]}
                if alert["kind"] == "nan":
                    event["metrics"] = sorted(k for k, v in row.items()
                                              if isinstance(v, float) and not math.isfinite(v))
                else:
                    event["value"] = row[alert["metric"]]
                    if alert["kind"] == "not_improving":
                        event["best"], event["best_round"] = self.best[index]
                if alert.get("adjust"):
                    event["change"] = {k: alert["adjust"][k] for k in ("noise_multiplier", "clients_per_round")}
                fired.append(event)
                if alert["action"] == "stop" and self.stopped is None:
                    self.stopped = event
            self.holding[index] = holds
        self.fired.extend(fired)
        return fired


def _replace_fields(value, **changes):
    """A copy of a TFF state record (a named tuple or an attrs class) with some fields changed."""
    if hasattr(value, "_replace"):
        return value._replace(**changes)
    fields = {f.name: getattr(value, f.name) for f in type(value).__attrs_attrs__}
    return type(value)(**{**fields, **changes})


def _same_type(old, new):
    """`new` as the kind of number `old` is (the state's types must not change)."""
    return np.asarray(new, dtype=np.asarray(old).dtype)[()] if isinstance(old, (np.ndarray, np.generic)) \
        else type(old)(new)


def change_dp_mechanism(state, noise_multiplier, clients_per_round):
    """The learning process's state with its DP aggregator changed for the remaining rounds (a
    monitor alert's lower_rate or raise_noise): the Gaussian noise's standard deviation becomes
    noise_multiplier * clip, and the mean's denominator clients_per_round. The state's
    structure and types stay those of the process, so `process.next` runs on unchanged."""
    aggregator = state.aggregator
    query = aggregator.query_state
    numerator = query.numerator_state
    stddev = noise_multiplier * float(numerator.l2_norm_clip)
    numerator = _replace_fields(numerator, stddev=_same_type(numerator.stddev, stddev))
    query = _replace_fields(query, numerator_state=numerator,
                            denominator=_same_type(query.denominator, clients_per_round))
    event = aggregator.dp_event
    if hasattr(event, "noise_multiplier"):
        event = _replace_fields(event, noise_multiplier=_same_type(event.noise_multiplier, noise_multiplier))
    aggregator = _replace_fields(aggregator, query_state=query, dp_event=event)
    return _replace_fields(state, aggregator=aggregator)


def describe_alert(event):
    """One line for the console: what fired, on which value, and what happens."""
    if "metrics" in event:
        seen = f"non-finite: {', '.join(event['metrics'])}"
    elif "best_round" in event:
        seen = f"best {event['best']:.4g} at round {event['best_round']}"
    else:
        seen = f"value {event['value']:.4g}"
    change = ""
    if "change" in event:  # lower_rate / raise_noise: what the remaining rounds use
        change = (f": noise multiplier {event['change']['noise_multiplier']:g}, "
                  f"{event['change']['clients_per_round']} clients per round from round {event['round'] + 1}")
    return f"alert after round {event['round']}: {event['alert']} ({seen}) -> {event['action']}{change}"


# ---------------------------------------------------------------------------------------------
# Client-update norms
# ---------------------------------------------------------------------------------------------


def measure_update_norms(inner):
    """`inner` (a TFF aggregation factory) that also reports update_norm_mean and update_norm_max, the
    L2 norms of the client updates it receives (before any clipping or noise inside `inner`). One
    federated_aggregate visits each update once (a norm sum, a count, a running max): one TF call
    per client, and federated_mean's float32 numbers (it sums norm * 1 and 1 in the same order)."""

    def norms(value):
        totals = tff.StructType([np.float32] * 3)  # sum of the norms, clients, largest norm

        @tff.tensorflow.computation(totals, value.type_signature.member)
        def accumulate(t, update):
            norm = tf.linalg.global_norm([tf.cast(u, tf.float32) for u in tf.nest.flatten(update)])
            return t[0] + norm, t[1] + 1.0, tf.maximum(t[2], norm)

        @tff.tensorflow.computation(totals, totals)
        def merge(a, b):  # the partial totals of several workers
            return a[0] + b[0], a[1] + b[1], tf.maximum(a[2], b[2])

        @tff.tensorflow.computation(totals)
        def report(t):
            return collections.OrderedDict(update_norm_mean=t[0] / t[1], update_norm_max=t[2])

        return tff.federated_aggregate(value, (np.float32(0),) * 3, accumulate, merge, report)

    if isinstance(inner, tff.aggregators.WeightedAggregationFactory):
        return tff.aggregators.add_measurements(inner, client_measurement_fn=lambda value, weight: norms(value))
    return tff.aggregators.add_measurements(inner, client_measurement_fn=norms)


REQUIRES: dict[str, tuple[str, ...]] = {
    "measure_update_norms": (),
    "RunLog": (),
    "RunDirectory": ("RunLog",),
    "lower_is_better": (),
    "Monitor": ("lower_is_better",),
    "describe_alert": (),
    "_replace_fields": (),
    "_same_type": (),
    "change_dp_mechanism": ("_replace_fields", "_same_type"),
}
