"""`fedlang run`: execute the emitted program in-process, on a worker whose lifetime we own.

Running the emitted source itself (rather than a parallel implementation) is what keeps
`fedlang run` and `fedlang emit` from drifting: both are the same program, the runner only
adds a progress bar, the per-round table and the run directory.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import signal
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..pipeline import Compiled
from ..terminal import terminal_safe
from .clients import ClientLog, client_table_columns, plot_client_spread
from .monitoring import AlertLog, TensorBoardLog, add_monitoring_summary, read_run_settings, write_run_settings

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def default_run_dir(experiment: str, root: Path = Path("runs")) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", experiment).strip("-.") or "run"
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{slug}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{slug}-{stamp}-{n}"
    return path


class RunRecorder:
    """Writes each round as it finishes (JSON lines + CSV), so an interrupted run loses nothing."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.rows: list[dict[str, Any]] = []
        self.jsonl = open(out_dir / "metrics.jsonl", "w")

    def restart_from(self, rows: list[dict[str, Any]]) -> None:
        """A resumed run: the rounds of the checkpoint replace whatever the killed run wrote."""
        self.jsonl.seek(0)
        self.jsonl.truncate()
        self.rows = []
        for row in rows:
            self.add(row)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.jsonl.write(json.dumps(row) + "\n")
        self.jsonl.flush()
        self._write_csv()

    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns.extend(k for k in row if k not in columns)
        with open(self.out_dir / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def close(self) -> None:
        self.jsonl.close()


class RoundTable:
    """The per-round table on the console (a live progress bar when it is a terminal)."""

    def __init__(self, console: Console, rounds: int, quiet: bool):
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=console, transient=True, disable=quiet or not console.is_terminal)
        self.task = self.progress.add_task("starting", total=rounds)
        self.columns: list[str] | None = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def status(self, message: str) -> None:
        message = terminal_safe(message)
        self.progress.update(self.task, description=message)
        if not self.console.is_terminal and not message.startswith("round"):
            self.console.print(f"[dim]{escape(message)}…[/dim]")

    def add(self, row: dict[str, Any], metric_names: tuple[str, ...], evaluates: bool,
            client_columns: tuple[str, ...] = ()) -> None:
        if self.columns is None:
            from .report import attribute_groups  # per-value counts of client attributes: in the files, not here

            counts = {n for group in attribute_groups(list(row)).values() for n in group}
            self.columns = [c for c in (["round"] + [f"train_{m}" for m in metric_names]
                            + ([f"eval_{m}" for m in metric_names] if evaluates else [])
                            + list(client_columns)  # a few figures of the federated evaluation (all in metrics.csv)
                            + [k for k in row if k not in ("round", "clients", "seconds", "bytes_down", "bytes_up")
                               and not k.startswith(("train_", "eval_", "fed_", "ft_"))]
                            + ["seconds"]) if c not in counts]
            self.console.print("  ".join(f"{c:>{_width(c)}}" for c in self.columns), style="bold")
        cells = []
        for c in self.columns:
            v = row.get(c)
            cells.append(f"{'':>{_width(c)}}" if v is None else
                         f"{v:>{_width(c)}d}" if isinstance(v, int) else f"{v:>{_width(c)}.4f}")
        self.console.print("  ".join(cells), highlight=False)
        self.progress.advance(self.task)


def _width(column: str) -> int:
    return max(len(column), 8 if column != "round" else 5)


def run_compiled(compiled: Compiled, rounds: int | None = None, out_dir: str | Path | None = None,
                 quiet: bool = False, resume: bool = False, checkpoint_every: int | None = None,
                 workers: int | None = None, worker_addresses: tuple[str, ...] = (),
                 worker_timeout: float | None = None) -> int:
    """Run a compiled spec; returns the process exit code. Never leaves a TFF worker behind.

    The program runs where its plan's runtime says (fedlang/lib/tff_worker.py); `workers` local
    worker_binary processes or the running ones at `worker_addresses` replace that for a resumed run.

    With `resume`, `out_dir` is an earlier run's directory: its program.py continues from the
    newest intact checkpoint (see fedlang/runtime/monitoring.py) with the rounds it was started with.
    """
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    checked, plan = compiled.checked, compiled.plan
    if resume:
        out = Path(out_dir)
        settings = read_run_settings(out)
        rounds, checkpoint_every = settings["rounds"], settings["checkpoint_every"]
        program = (out / "program.py").read_bytes()  # the program that ran, continued
    else:
        rounds = rounds or checked.train.rounds
        checkpoint_every = checkpoint_every or (checked.monitor.checkpoint_every if checked.monitor else None)
        out = Path(out_dir) if out_dir else default_run_dir(checked.experiment)
        program = compiled.program_bytes()  # the bytes written and the bytes executed are the same
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "program.py").write_bytes(program)
            (out / "spec.fed").write_text(compiled.source.text, encoding="utf-8", errors="surrogateescape")
            checkpoint_every = write_run_settings(out, compiled, rounds, checkpoint_every)
        except OSError as exc:
            err.print(f"[red bold]error:[/] cannot write the run directory {shown(out)}: {shown(exc.strerror or exc)}",
                      highlight=False)
            return EXIT_USAGE
    # The experiment name and the path are spec/user text: shown, never interpreted (markup, controls).
    console.print(f"[bold]{shown(checked.experiment)}[/bold] — {checked.train.algorithm}, {rounds} rounds, "
                  f"seed {checked.seed} → {shown(out)}" + (" (resuming)" if resume else ""))

    stop = StopOnSignal()
    previous_handlers = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's C++ start-up chatter
    recorder = RunRecorder(out)
    alerts = AlertLog(out, console, append=resume)
    tensorboard = TensorBoardLog(out)
    status, code, worker, reason, namespace, checkpoints = "failed", EXIT_FAILED, None, None, {}, None
    client_log = ClientLog(out, append=resume) if plan.personal and plan.personal["evaluates"] else None
    started = time.time()
    try:
        namespace = _load_program(program, out / "program.py")
        if resume and "RunProgress" in namespace:  # train(checkpoint_dir=…, progress=…) of before the entry contract
            raise RuntimeError("this run's program.py was written by an earlier fedlang, whose train() takes other "
                               "hooks: resume it with that version, or start the run again")
        if "privacy_note" in namespace:  # the program says what its epsilon means
            console.print(namespace["privacy_note"]())
        from .checkpoints import RunCheckpoints  # these import TensorFlow, loaded by now
        from .devices import gpu_note

        gpu = gpu_note(fused=plan.execution[0] == "fused")
        if gpu:
            console.print(f"gpu: {shown(gpu)}")
        if plan.secure_aggregation:
            console.print("[yellow]note:[/] secure aggregation is simulated: TFF's test context replaces the "
                          "secure sum with a plain sum of the clipped values (same numbers, no cryptography)")
        worker = stop.worker = _start_workers(namespace, out, plan.secure_aggregation, workers, worker_addresses,
                                              worker_timeout)
        if hasattr(worker, "addresses"):  # a pool: several workers, or remote ones
            console.print(describe_workers(worker))
        evaluates = plan.data_steps.evaluates  # on the central test set (every EVAL_EVERY rounds)
        with RoundTable(console, rounds, quiet) as table:
            def on_round(row: dict[str, Any]) -> None:
                recorder.add(row)
                tensorboard.add(row)
                table.add(row, plan.metric_names, evaluates, client_table_columns(checked))
                if stop.requested:  # the KeyboardInterrupt was swallowed (say, in a finalizer)
                    raise KeyboardInterrupt

            def on_restore(done: int, rows: list[dict[str, Any]]) -> None:
                recorder.restart_from(rows)
                if client_log is not None:
                    client_log.restart_from(done)
                tensorboard.restart_from(rows)
                alerts.restart_from(done)
                table.progress.update(table.task, completed=done)
                console.print(f"resumed from the checkpoint of round {done}")

            # The program's entry contract (docs/language.md, "The emitted program"): train() with the
            # hooks its spec uses; checkpoints on Ctrl-C/SIGTERM are saved below (_checkpoint_interrupted).
            checkpoints = RunCheckpoints(str(out / "checkpoints"), checkpoint_every, on_restore)
            hooks = {"on_round": on_round, "on_status": table.status, "checkpoints": checkpoints}
            if plan.monitor.alerts:
                hooks["on_alert"] = alerts.add
            if client_log is not None:
                hooks["on_clients"] = client_log.add
            keras_model = namespace["train"](rounds, **hooks)
        _save_model(namespace, keras_model, out / "model.keras")
        status, code = ("stopped", 0) if alerts.stopped_by else ("completed", 0)
    except KeyboardInterrupt:
        status, code = "interrupted", EXIT_INTERRUPTED
    except Exception as exc:
        if stop.requested:  # the interrupt stopped the worker, and the computation failed with it
            status, code = "interrupted", EXIT_INTERRUPTED
        elif isinstance(exc, (ValueError, RuntimeError, OSError)):
            reason = str(exc)  # bad client data, or a NaN/inf round (NonFiniteRound): saved in summary.json
            if type(exc).__name__ == "NonFiniteRound":
                status = "stopped"
            _save_traceback(out)
            err.print(f"[red bold]error:[/] {shown(exc)}", highlight=False)
            err.print(f"(details in {shown(out / 'traceback.txt')})")
        else:  # a bug in fedlang or TFF: keep the details, show one line
            _save_traceback(out)
            err.print(f"[red bold]internal error:[/] {type(exc).__name__}: {shown(exc)}", highlight=False)
            err.print(f"the traceback is in {shown(out / 'traceback.txt')}; please report it with the spec")
    finally:
        stop.finishing = True  # a second Ctrl-C must not cut the summary short
        if worker is not None:
            worker.close()
        saved = _checkpoint_interrupted(checkpoints, err) if status == "interrupted" else None
        recorder.close()
        if client_log is not None:
            client_log.close()
        alerts.close()
        tensorboard.close()
        _write_summary(out, compiled, namespace, rounds, recorder.rows, status, time.time() - started, reason,
                       workers=getattr(worker, "addresses", None) or (worker and [worker.address]))
        add_monitoring_summary(out, alerts)
        _build_report(out, err)
        if recorder.rows:
            _plot(out, recorder.rows, plan.metric_names, checked.experiment)
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    if status == "interrupted":
        err.print(f"interrupted after {len(recorder.rows)} of {rounds} rounds; results so far are in {shown(out)}"
                  + (f"; checkpoint of round {saved}: `fedlang run --resume {shown(out)}` continues" if saved else ""))
    if status == "stopped":
        console.print(f"stopped after round {alerts.stopped_by['round']} by alert `{shown(alerts.stopped_by['alert'])}`; "
                      f"results in {shown(out)}/")
    if status == "completed":
        final = recorder.rows[-1]
        scores = ", ".join(f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4f}" for k, v in final.items()
                           if k.startswith("eval_") or k in client_table_columns(checked))
        console.print(f"done: {scores or 'no evaluation'}; results in {shown(out)}/ "
                      f"(metrics.csv, metrics.jsonl, summary.json, model.keras, metrics.png)")
    return code


def _start_workers(namespace: dict[str, Any], out: Path, secure_aggregation: bool, workers: int | None,
                   addresses: tuple[str, ...], timeout: float | None):
    """The program's workers: the pool its runtime asks for (WORKERS or WORKER_ADDRESSES, replaced by
    `workers`/`addresses` when given: a resumed run), else one local worker."""
    secure = {}
    if secure_aggregation:  # (a resumed run's program.py from before simulate_secure_sums takes a flag)
        secure = ({"transform": namespace["simulate_secure_sums"]} if "simulate_secure_sums" in namespace
                  else {"secure_aggregation": True})
    if "use_tff_workers" in namespace:
        local, remote = ((workers or 1, addresses) if workers or addresses else
                         (namespace.get("WORKERS", 1), namespace.get("WORKER_ADDRESSES", ())))
        return namespace["use_tff_workers"](local, remote, log_dir=str(out), **secure,
                                            timeout=timeout or namespace.get("WORKER_TIMEOUT", 600.0))
    if (workers or 1) != 1 or addresses:
        raise RuntimeError("this run's program.py runs on one local TFF worker (its spec has no runtime block): "
                           "resume it without --workers/--worker")
    return namespace["use_local_tff_worker"](log_path=str(out / "worker.log"), **secure)


def describe_workers(pool) -> str:
    """The run header's line on where the rounds run."""
    if pool.workers[0].pid is None:
        return f"workers: running TFF worker(s) at {shown(', '.join(pool.addresses))}"
    return (f"workers: {len(pool.workers)} local worker_binary processes (pids "
            f"{', '.join(str(w.pid) for w in pool.workers)}; logs worker-1.log … worker-{len(pool.workers)}.log)")


def shown(text: object) -> str:
    """Spec or user text for a rich console: control characters escaped, markup not interpreted."""
    return escape(terminal_safe(text))


def _build_report(out: Path, err: Console) -> None:
    """report.html; a failure to plot never hides the run's own result."""
    from .report import build_report

    try:
        build_report(out)
    except Exception as exc:  # noqa: BLE001
        err.print(f"[yellow]warning:[/] report.html not written: {type(exc).__name__}: {shown(exc)}")


def _checkpoint_interrupted(checkpoints, err: Console) -> int | None:
    """Ctrl-C or SIGTERM: checkpoint the last completed round (RunCheckpoints)."""
    if checkpoints is None:
        return None
    try:
        return checkpoints.save()
    except Exception as exc:  # noqa: BLE001 - the earlier checkpoints stay usable
        err.print(f"[yellow]warning:[/] no checkpoint of the last round: {type(exc).__name__}: {shown(exc)}")
        return None


def _save_model(namespace: dict[str, Any], trained, path: Path) -> None:
    """Save the global model uncompiled (the evaluation-only compile would add a stray optimizer)."""
    model = namespace["build_keras_model"]()
    model.set_weights(trained.get_weights())
    model.save(path)


class StopOnSignal:
    """SIGINT/SIGTERM handler: note the request, stop the TFF worker, raise KeyboardInterrupt.

    Stopping the worker makes the interrupt stick: Python ignores exceptions raised
    inside finalizers (TF runs many), but a computation whose worker is gone fails at
    once instead of running on, and `on_round` checks `requested` after every round.
    """

    def __init__(self) -> None:
        self.requested = self.finishing = False
        self.worker = None

    def __call__(self, signum, frame) -> None:
        self.requested = True
        if self.finishing:  # results are being written: let that finish
            return
        if self.worker is not None:
            if hasattr(self.worker, "kill"):  # a WorkerPool
                self.worker.kill()
            elif self.worker.process.poll() is None:  # a LocalWorker
                self.worker.process.kill()
        raise KeyboardInterrupt


def _load_program(program: bytes, path: Path) -> dict[str, Any]:
    """Execute the program from its bytes, exactly as `python program.py` would decode them."""
    namespace: dict[str, Any] = {"__name__": "fedlang_program", "__file__": str(path)}
    exec(compile(program, str(path), "exec", dont_inherit=True), namespace)  # noqa: S102 - our own emitted program
    return namespace


def _save_traceback(out: Path) -> None:
    (out / "traceback.txt").write_text(traceback.format_exc())


def _write_summary(out: Path, compiled: Compiled, program: dict[str, Any], rounds: int, rows: list[dict],
                   status: str, seconds: float, reason: str | None = None, workers: list[str] | None = None) -> None:
    """summary.json; its privacy part is the program's own constants (what the run really used)."""
    from .. import __version__

    c = compiled.checked
    summary = {
        "experiment": c.experiment,
        "spec": compiled.source.name,
        "seed": c.seed,
        "status": status,
        "reason": reason,
        "rounds_planned": rounds,
        "rounds_completed": len(rows),
        "final": rows[-1] if rows else None,
        "seconds": round(seconds, 3),
        "fedlang": __version__,
        "model_parameters": c.model.param_count,
        "clients": c.data.num_clients,
        "bytes_down_total": sum(r.get("bytes_down", 0) for r in rows),
        "bytes_up_total": sum(r.get("bytes_up", 0) for r in rows),
        "workers": workers,  # the TFF workers' addresses (local ones on localhost), or None
    }
    if "ACCOUNTANT" in program:
        summary["privacy"] = {
            "epsilon": rows[-1].get("epsilon") if rows else 0.0,
            "delta": program["DELTA"],
            "accountant": f"{program['ACCOUNTANT']} (dp-accounting), user-level, Poisson sampling",
            "noise_multiplier": program["NOISE_MULTIPLIER"],
            "sampling_rate": program["SAMPLING_RATE"],
            "epsilon_target": program["EPSILON_TARGET"],
            "on_exceed": program["ON_EXCEED"],
        }
    if c.simulation is not None and rows:
        summary["simulation"] = {
            "rounds_abandoned": sum(r.get("abandoned", 0) for r in rows),
            "mean_participation": sum(r["participation"] for r in rows) / len(rows),
            "mean_completed": sum(r["completed"] for r in rows) / len(rows),
            "simulated_seconds_total": (sum(r["sim_seconds"] for r in rows) if "sim_seconds" in rows[0] else None),
        }
    if compiled.plan.secure_aggregation:
        summary["secure_aggregation"] = "simulated (TFF test context: secure sum run as a plain sum)"
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def _plot(out: Path, rows: list[dict], metric_names: tuple[str, ...], title: str) -> None:
    """metrics.png: one panel per metric, train per round and eval where measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    simulated = [k for k in ("participation", "sim_seconds") if k in rows[0]]  # a simulation block's columns
    simulated += [k for k in rows[0] if k.endswith("_entropy") and k[:-8] + "_coverage" in rows[0]]
    panels = len(metric_names) + len(simulated)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), squeeze=False)
    for ax, name in zip(axes[0][len(metric_names):], simulated):
        ax.plot([r["round"] for r in rows], [r[name] for r in rows], "-", markersize=3)
        ax.set_xlabel("round")
        ax.set_title({"participation": "participation (completed / selected)",
                      "sim_seconds": "simulated round time (s)"}.get(name, f"participants' {name[:-8]} entropy"))
        ax.grid(alpha=0.3)
    for ax, name in zip(axes[0], metric_names):
        for prefix, style in (("train", "-"), ("eval", "o-")):
            points = [(r["round"], r[f"{prefix}_{name}"]) for r in rows if f"{prefix}_{name}" in r]
            if points:
                ax.plot(*zip(*points), style, label=prefix, markersize=3)
        plot_client_spread(ax, rows, name)
        ax.set_xlabel("round")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.suptitle(terminal_safe(title), parse_math=False, usetex=False)  # a spec name is text, not mathtext
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=110)
    plt.close(fig)
