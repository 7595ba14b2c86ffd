"""`fedlang worker --port P`: serve TFF's own worker_binary on this machine for runs elsewhere.

The worker is TFF 0.87's C++ executor service (the same binary `fedlang run` starts locally);
a run on another machine uses it with `fedlang run SPEC --worker THIS_HOST:P` (or the emitted
program's `--worker`). This command only owns its lifetime: output to its own log file, stopped
cleanly on Ctrl-C or SIGTERM, never left running after this process ends. It is started by the
emitted programs' own code (fedlang/lib/worker_process.py: start_worker_binary). Importing this module
does not load TensorFlow.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import signal
import socket
import subprocess
import time
from pathlib import Path

from ..lib.worker_process import start_worker_binary

EXIT_FAILED = 1
EXIT_USAGE = 2


def worker_binary() -> Path:
    """The worker_binary of the installed tensorflow-federated (found without importing TFF)."""
    spec = importlib.util.find_spec("tensorflow_federated")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("tensorflow-federated is not installed (the worker is TFF's worker_binary)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "worker_binary"
    if not path.is_file():
        raise FileNotFoundError(f"no worker_binary in the installed tensorflow-federated ({path})")
    return path


def tff_version() -> str:
    try:
        return importlib.metadata.version("tensorflow-federated")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("localhost", port), timeout=1).close()
        return True
    except OSError:
        return False


def _log_tail(path: Path, limit: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip()
    except OSError:
        return ""


def serve(port: int, log_path: Path, echo=None, start_timeout: float = 60.0) -> int:
    """Run worker_binary on `port` until it ends or this process gets SIGINT/SIGTERM; exit code.
    `echo(text, err=False)` prints (click.echo by default)."""
    if echo is None:
        import click

        echo = click.echo
    try:
        binary = worker_binary()
    except FileNotFoundError as exc:
        echo(f"error: {exc}", err=True)
        return EXIT_FAILED
    if _listening(port):
        echo(f"error: port {port} is already in use on this machine; choose another with --port", err=True)
        return EXIT_USAGE
    try:
        log = open(log_path, "wb")
    except OSError as exc:
        echo(f"error: cannot write the log {log_path}: {exc.strerror or exc}", err=True)
        return EXIT_USAGE
    with log:
        process = start_worker_binary(str(binary), port, log)
    stopping = []

    def stop(signum, frame):  # noqa: ARG001
        stopping.append(signal.Signals(signum).name)
        if process.poll() is None:
            process.terminate()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        deadline = time.monotonic() + start_timeout
        while not _listening(port):
            if process.poll() is not None or stopping or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        else:
            echo(f"fedlang worker: TFF {tff_version()} worker_binary (pid {process.pid}) listening on port {port} "
                 f"(all interfaces); log {log_path}")
            echo(f"use it from another machine with: fedlang run SPEC --worker {socket.gethostname()}:{port}; "
                 "stop with Ctrl-C")
        while True:
            try:
                code = process.wait(timeout=1.0 if not stopping else 10.0)
                break
            except subprocess.TimeoutExpired:
                if stopping:  # terminate was not enough
                    process.kill()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stopping:
        echo(f"fedlang worker: stopped ({stopping[0]}); the worker on port {port} has exited")
        return 0
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    tail = _log_tail(log_path)
    echo(f"error: the TFF worker_binary on port {port} {how}" + (f"; its log ends:\n{tail}" if tail else ""), err=True)
    return EXIT_FAILED
