"""The run directory's monitoring files: run.json (what `--resume` needs), alerts.jsonl, and the
alert counts and stop reason in summary.json.

The alerts themselves are evaluated inside the emitted program (fedlang/lib/monitor.py), so
`fedlang run` and the standalone program stop at the same round; this module only records them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

DEFAULT_CHECKPOINT_EVERY = 10


def write_run_settings(out: Path, compiled, rounds: int, checkpoint_every: int | None) -> int:
    """run.json: the rounds, checkpoint interval and spec location a resumed run continues with."""
    every = checkpoint_every or DEFAULT_CHECKPOINT_EVERY
    settings = {"rounds": rounds, "checkpoint_every": every,
                "spec": str(Path(compiled.source.name).resolve()),
                "spec_dir": str(Path(compiled.source.name).resolve().parent)}
    (out / "run.json").write_text(json.dumps(settings, indent=2) + "\n")
    return every


def read_run_settings(out: Path) -> dict[str, Any]:
    """run.json of an earlier run; raises FileNotFoundError with a message when it is not a run dir."""
    path = out / "run.json"
    if not path.is_file() or not (out / "program.py").is_file() or not (out / "spec.fed").is_file():
        raise FileNotFoundError(f"{out} is not a fedlang run directory (it needs run.json, spec.fed, program.py)")
    return json.loads(path.read_text())


class AlertLog:
    """alerts.jsonl, one event per fired alert, and a line under the round in the console table."""

    def __init__(self, out: Path, console: Console, append: bool = False):
        self.path = out / "alerts.jsonl"
        self.console = console
        self.events: list[dict[str, Any]] = []
        self.file = open(self.path, "a" if append else "w")  # a resumed run keeps its alerts (restart_from)
        self.stopped_by: dict[str, Any] | None = None

    def add(self, event: dict[str, Any], show: bool = True) -> None:
        self.events.append(event)
        self.file.write(json.dumps(event) + "\n")
        self.file.flush()
        if event["action"] == "stop" and self.stopped_by is None:
            self.stopped_by = event
        if show:
            style = "red" if event["action"] == "stop" else "yellow"
            self.console.print(f"[{style}]  ! {escape(describe(event))}[/]", highlight=False)

    def restart_from(self, done: int) -> None:
        """A resumed run: the alerts of the checkpoint's rounds (written before it was saved) stay."""
        self.file.close()
        events = [json.loads(line) for line in self.path.read_text().splitlines() if line]
        self.file = open(self.path, "w")
        self.events, self.stopped_by = [], None
        for event in events:
            if event["round"] <= done:
                self.add(event, show=False)

    def close(self) -> None:
        self.file.close()


def describe(event: dict[str, Any]) -> str:
    """The same line as the emitted program prints (its `describe_alert`, from fedlang/lib/monitor.py)."""
    from ..lib.monitor import describe_alert  # imports TFF: only when an alert fires

    return describe_alert(event)


def add_monitoring_summary(out: Path, alerts: AlertLog) -> None:
    """Alert counts (per alert and per action) and, for a stopped run, the alert that stopped it."""
    path = out / "summary.json"
    summary = json.loads(path.read_text())
    summary["alerts"] = {
        "fired": len(alerts.events),
        "by_alert": dict(Counter(e["alert"] for e in alerts.events)),
        "by_action": dict(Counter(e["action"] for e in alerts.events)),
    }
    if alerts.stopped_by is not None:
        event = alerts.stopped_by
        summary["stop_reason"] = f"alert `{event['alert']}` fired after round {event['round']}"
        summary["stopped_by"] = event
    checkpoints = sorted(p.name for p in (out / "checkpoints").glob("program_state_*")
                         if p.is_dir() and "_temp" not in p.name) if (out / "checkpoints").is_dir() else []
    summary["checkpoints"] = checkpoints
    path.write_text(json.dumps(summary, indent=2) + "\n")


class TensorBoardLog:
    """TensorBoard event files in RUN_DIR/tensorboard: every numeric value of a row as a scalar
    (tag = the metric name, step = the round); `tensorboard --logdir runs/` shows every run."""

    def __init__(self, out: Path):
        self.dir = out / "tensorboard"
        self.writer = None

    def _open(self):
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(str(self.dir))

    def add(self, row: dict[str, Any]) -> None:
        import tensorflow as tf

        if self.writer is None:
            self._open()
        with self.writer.as_default():
            for key, value in row.items():
                if key != "round" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    tf.summary.scalar(key, float(value), step=row["round"])
        self.writer.flush()

    def restart_from(self, rows: list[dict[str, Any]]) -> None:
        """A resumed run: drop the killed run's events and write the checkpoint's rounds again."""
        import shutil

        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        self._open()
        for row in rows:
            self.add(row)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
