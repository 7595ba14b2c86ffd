"""Checkpoints that survive kill -9, and the alerts of a spec's ``monitor`` block.

Checkpoints: after round ``r`` the program saves ``{"state": <the TFF server state>, "round": r,
"record": <JSON of the metric rows and alerts so far>}`` with TFF's own
``tff.program.FileProgramStateManager`` (a SavedModel written to a temporary directory, then
renamed: a kill mid-write leaves only an ignored ``*_temp*`` directory). A manifest with the
SHA-256 of every file is written next to it (write, then rename), so a truncated or damaged
checkpoint is detected and the previous one used. Nothing else needs saving to repeat the run
exactly: each round's client sample and shuffles come from ``np.random.default_rng([SEED,
round])``, and seeded DP noise keeps its RNG counter inside the server state.

Alerts: each alert is a dict (``metric``, ``kind``, ``op``, ``threshold``, ``rounds``, ``by``,
``fraction``, ``action``, ``text``); ``Monitor.observe(row)`` returns the alerts that fire after a
round. An alert fires in the first round its condition holds, and again only after the
condition has stopped holding in between.

Like the other modules of fedlang/lib, this is copied verbatim into the programs fedlang
generates (standard library, numpy, TensorFlow and TFF only). ``REQUIRES`` at the bottom maps
each name to the helpers of this module it uses.
"""

import asyncio
import collections
import csv
import hashlib
import json
import math
import os
import shutil
import signal
import sys

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------

def _checkpoint_digest(path):
    """{relative file name: sha256} of every file under a checkpoint directory."""
    digests = {}
    for folder, _, files in os.walk(path):
        for name in sorted(files):
            full = os.path.join(folder, name)
            with open(full, "rb") as f:
                digests[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return digests


def save_checkpoint(directory, round_num, state, record, keep=3):
    """Save the server state after `round_num` with `record` (JSON-able: metric rows, alerts).

    A checkpoint for `round_num` that already exists is replaced (a resumed run that fell back
    past a damaged checkpoint writes it again).
    """
    manager = tff.program.FileProgramStateManager(directory, prefix="program_state_", keep_total=keep,
                                                  keep_first=False)
    path = os.path.join(directory, f"program_state_{round_num}")
    manifest = path + ".sha256.json"
    for stale in (manifest, path):
        if os.path.isdir(stale):
            shutil.rmtree(stale)
        elif os.path.exists(stale):
            os.remove(stale)
    value = {"state": state, "round": np.int64(round_num), "record": json.dumps(record)}
    asyncio.run(manager.save(value, round_num))
    digest = {"round": round_num, "files": _checkpoint_digest(path)}
    with open(manifest + ".tmp", "w") as f:
        json.dump(digest, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(manifest + ".tmp", manifest)
    for name in os.listdir(directory):  # manifests of checkpoints the manager removed
        if name.endswith(".sha256.json") and not os.path.isdir(os.path.join(directory, name[:-len(".sha256.json")])):
            os.remove(os.path.join(directory, name))


def load_checkpoint(directory, structure, report=None):
    """The newest intact checkpoint in `directory` as (round, state, record), or None.

    `structure` is a state of the same process (e.g. `process.initialize()`). Incomplete,
    truncated or damaged checkpoints are reported (to `report`, else standard error), moved
    aside (to `rejected_*`) and skipped.
    """
    report = report or (lambda message: print(f"warning: {message}", file=sys.stderr, flush=True))
    if not os.path.isdir(directory):
        return None
    for name in os.listdir(directory):  # a save killed before its rename
        if name.startswith("program_state_") and "_temp" in name:
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    manager = tff.program.FileProgramStateManager(directory, prefix="program_state_")
    versions = asyncio.run(manager.get_versions()) or []
    for version in sorted(versions, reverse=True):
        path = os.path.join(directory, f"program_state_{version}")
        problem = None
        try:
            with open(path + ".sha256.json") as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            problem = "it has no complete manifest (the save was cut short)"
        else:
            if manifest.get("files") != _checkpoint_digest(path) or manifest.get("round") != version:
                problem = "its files do not match their SHA-256 manifest (truncated or damaged)"
        if problem is None:
            try:
                loaded = asyncio.run(manager.load(version, {"state": structure, "round": np.int64(0),
                                                            "record": ""}))
                record = loaded["record"]
                record = json.loads(record.decode() if isinstance(record, bytes) else record)
                if int(loaded["round"]) != version:
                    raise ValueError(f"it holds round {int(loaded['round'])}")
                return version, loaded["state"], record
            except Exception as exc:  # noqa: BLE001 - any failure to read means: use an older one
                problem = f"it cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
        report(f"checkpoint of round {version} is unusable: {problem}; using the previous one")
        for moved in (path, path + ".sha256.json"):
            target = os.path.join(directory, "rejected_" + os.path.basename(moved))
            if os.path.isdir(target):
                shutil.rmtree(target)
            if os.path.exists(moved):
                os.replace(moved, target)
    return None


class RunProgress:
    """The newest completed round (its server state and the rows so far), so that a run stopped
    by Ctrl-C or SIGTERM checkpoints the rounds it finished (`save`); `train` updates it after
    every round. A resumed run then continues exactly as an uninterrupted one."""

    interrupted = False  # set by stop_on_sigterm's handler

    def __init__(self, checkpoint_dir):
        self.checkpoint_dir = checkpoint_dir
        self.round, self.state, self.rows = 0, None, []

    def completed(self, round_num, state, rows):
        self.round, self.state, self.rows = round_num, state, rows
        if RunProgress.interrupted:  # the signal's KeyboardInterrupt was swallowed (e.g. in a TF finalizer)
            raise KeyboardInterrupt

    def save(self):
        """Checkpoint the newest completed round unless it has a checkpoint; returns that round
        (None when there is no checkpoint directory or no round finished)."""
        if not self.checkpoint_dir or self.state is None:
            return None
        if not os.path.exists(os.path.join(self.checkpoint_dir, f"program_state_{self.round}.sha256.json")):
            rows = [row for row in self.rows if row["round"] <= self.round]
            save_checkpoint(self.checkpoint_dir, self.round, self.state, {"rows": rows})
        return self.round


def stop_on_sigterm():
    """SIGTERM (`kill`, a scheduler preempting the job) raises KeyboardInterrupt, as Ctrl-C does,
    so the program checkpoints its last completed round before it exits. Both are also noted, so
    an interrupt that TensorFlow swallows stops the run after the round (RunProgress.completed)."""
    def interrupt(signum, frame):
        RunProgress.interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


class RunFiles:
    """The standalone program's run directory (`--out DIR`): the files `fedlang run` writes from
    the same rows and alerts: metrics.jsonl, metrics.csv, alerts.jsonl, summary.json (status,
    alert counts, the alert that stopped the run), TensorBoard events in tensorboard/ and
    checkpoints in checkpoints/. (`fedlang report DIR` adds report.html.)"""

    def __init__(self, out_dir, experiment, seed, rounds):
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir, self.experiment, self.seed, self.rounds = out_dir, experiment, seed, rounds
        self.checkpoint_dir = os.path.join(out_dir, "checkpoints")
        self.rows, self.alerts, self.stopped_by, self.finished = [], [], None, False
        self.writer = None
        self._rewrite()

    def _path(self, name):
        return os.path.join(self.out_dir, name)

    def _rewrite(self):
        for name, items in (("metrics.jsonl", self.rows), ("alerts.jsonl", self.alerts)):
            with open(self._path(name), "w") as f:
                f.writelines(json.dumps(item) + "\n" for item in items)
        self._write_csv()
        if self.writer is not None:
            self.writer.close()
        shutil.rmtree(self._path("tensorboard"), ignore_errors=True)  # a resumed run writes its rounds again
        self.writer = tf.summary.create_file_writer(self._path("tensorboard"))
        for row in self.rows:
            self._scalars(row)

    def _write_csv(self):
        columns = []
        for row in self.rows:
            columns.extend(k for k in row if k not in columns)
        with open(self._path("metrics.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def _scalars(self, row):
        with self.writer.as_default():
            for key, value in row.items():
                if key != "round" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    tf.summary.scalar(key, float(value), step=row["round"])
        self.writer.flush()

    def add_row(self, row):
        self.rows.append(row)
        with open(self._path("metrics.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")
        self._write_csv()
        self._scalars(row)

    def add_alert(self, event):
        self.alerts.append(event)
        with open(self._path("alerts.jsonl"), "a") as f:
            f.write(json.dumps(event) + "\n")
        if event["action"] == "stop" and self.stopped_by is None:
            self.stopped_by = event

    def resume(self, done, rows, alerts):
        """A run continued from its checkpoint of round `done`: the files hold its rounds and alerts."""
        self.rows, self.alerts = list(rows), list(alerts)
        self.stopped_by = next((a for a in alerts if a["action"] == "stop"), None)
        self._rewrite()

    def callbacks(self, print_round):
        """train()'s on_round, on_alert and on_resume: print as the program does, and record."""
        def on_round(row):
            print_round(row)
            self.add_row(row)

        def on_alert(event):
            print(describe_alert(event), flush=True)
            self.add_alert(event)

        def on_resume(done, rows, alerts):
            print(f"resumed from the checkpoint of round {done}", flush=True)
            self.resume(done, rows, alerts)

        return {"on_round": on_round, "on_alert": on_alert, "on_resume": on_resume}

    def finish(self, status, reason=None):
        """summary.json: status (completed, stopped, interrupted, failed), rounds, alerts and stop reason."""
        if self.finished:
            return
        self.finished = True
        if self.stopped_by is not None and status == "completed":
            status = "stopped"
        summary = {
            "experiment": self.experiment, "seed": self.seed, "status": status,
            "rounds_planned": self.rounds, "rounds_completed": len(self.rows),
            "final": self.rows[-1] if self.rows else None,
            "bytes_down_total": sum(r.get("bytes_down", 0) for r in self.rows),
            "bytes_up_total": sum(r.get("bytes_up", 0) for r in self.rows),
            "alerts": {"fired": len(self.alerts),
                       "by_alert": dict(collections.Counter(e["alert"] for e in self.alerts)),
                       "by_action": dict(collections.Counter(e["action"] for e in self.alerts))},
        }
        if self.stopped_by is not None:
            summary["stop_reason"] = f"alert `{self.stopped_by['alert']}` fired after round {self.stopped_by['round']}"
            summary["stopped_by"] = self.stopped_by
        elif reason is not None:
            summary["stop_reason"] = reason
        summary["checkpoints"] = sorted(
            (n for n in os.listdir(self.checkpoint_dir) if n.startswith("program_state_") and "_temp" not in n
             and os.path.isdir(os.path.join(self.checkpoint_dir, n))),
            key=lambda n: int(n.rsplit("_", 1)[1])) if os.path.isdir(self.checkpoint_dir) else []
        with open(self._path("summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
        if self.writer is not None:
            self.writer.close()


class interrupts_checkpointed:
    """`with interrupts_checkpointed(progress, files):` around the program's training. Ctrl-C or
    SIGTERM: the last completed round is checkpointed, summary.json says `interrupted`, and the
    program exits with code 130; otherwise summary.json gets the run's status."""

    def __init__(self, progress, files=None):
        self.progress, self.files = progress, files

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None:
            if self.files is not None:
                self.files.finish("completed")
            return False
        if issubclass(kind, KeyboardInterrupt):
            saved = self.progress.save()
            if self.files is not None:
                self.files.finish("interrupted")
            where = (f"; the checkpoint of round {saved} is in {self.progress.checkpoint_dir}: run again with the "
                     "same options to resume") if saved else ""
            print(f"interrupted after {self.progress.round} completed round(s){where}", file=sys.stderr, flush=True)
            raise SystemExit(130)
        if self.files is not None:
            self.files.finish("stopped" if issubclass(kind, SystemExit) else "failed",
                              reason=str(error) if issubclass(kind, SystemExit) else None)
        return False


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
    numerator = _replace_fields(numerator, stddev=_same_type(numerator.stddev,
                                                              noise_multiplier * float(numerator.l2_norm_clip)))
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


def _update_norm_measurements(value):
    """{update_norm_mean, update_norm_max}@SERVER: L2 norms of the clients' model updates.

    One federated_aggregate: each client's update is visited once (its norm added to a sum, a
    count and a running maximum), so the measurement costs one TF call per client. The numbers
    are those of federated_mean and a maximum over per-client norms: TFF reduces federated_mean
    to sum(norm * 1) / sum(1) in float32, accumulated in the same client order."""
    totals_type = tff.StructType([np.float32, np.float32, np.float32])  # norm sum, client count, norm max

    @tff.tensorflow.computation(totals_type, value.type_signature.member)
    def accumulate(totals, update):
        norm = tf.linalg.global_norm([tf.cast(t, tf.float32) for t in tf.nest.flatten(update)])
        return totals[0] + norm, totals[1] + 1.0, tf.maximum(totals[2], norm)

    @tff.tensorflow.computation(totals_type, totals_type)
    def merge(a, b):  # partial totals of several workers
        return a[0] + b[0], a[1] + b[1], tf.maximum(a[2], b[2])

    @tff.tensorflow.computation(totals_type)
    def report(totals):
        return collections.OrderedDict(update_norm_mean=totals[0] / totals[1], update_norm_max=totals[2])

    zero = (np.float32(0.0), np.float32(0.0), np.float32(0.0))
    return tff.federated_aggregate(value, zero, accumulate, merge, report)


def measure_update_norms(inner):
    """`inner` (a TFF aggregation factory) that also reports the mean and max L2 norm of the client
    updates it receives (before any clipping or noise inside `inner`), as measurements."""
    if isinstance(inner, tff.aggregators.WeightedAggregationFactory):
        return tff.aggregators.add_measurements(
            inner, client_measurement_fn=lambda value, weight: _update_norm_measurements(value))
    return tff.aggregators.add_measurements(inner, client_measurement_fn=_update_norm_measurements)


def update_norm_report(measurements):
    """The update norms found anywhere in a round's aggregator measurements."""
    found = {}
    for key, value in measurements.items():
        if isinstance(value, dict):
            found.update(update_norm_report(value))
        elif key in ("update_norm_mean", "update_norm_max"):
            found[key] = float(value)
    return found


REQUIRES: dict[str, tuple[str, ...]] = {
    "_update_norm_measurements": (),
    "measure_update_norms": ("_update_norm_measurements",),
    "update_norm_report": (),
    "_checkpoint_digest": (),
    "save_checkpoint": ("_checkpoint_digest",),
    "load_checkpoint": ("_checkpoint_digest",),
    "RunProgress": ("save_checkpoint",),
    "stop_on_sigterm": ("RunProgress",),
    "RunFiles": ("describe_alert",),
    "interrupts_checkpointed": (),
    "lower_is_better": (),
    "Monitor": ("lower_is_better",),
    "describe_alert": (),
    "_replace_fields": (),
    "_same_type": (),
    "change_dp_mechanism": ("_replace_fields", "_same_type"),
}
