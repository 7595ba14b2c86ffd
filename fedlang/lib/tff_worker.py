"""Run TFF computations on a local worker_binary whose lifetime this program owns.

TFF's default context starts `worker_binary` itself and leaves it running (and
holding our stdout) after Python exits. Here we start it ourselves: it dies
with this process, even on SIGKILL, and its output goes to a log file.
"""
import atexit
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import tensorflow_federated as tff


class WorkerExitedError(RuntimeError):
    """The worker process ended while a computation still needed it."""


class LocalWorker:
    """Handle on a local TFF worker process; `close()` stops it (idempotent)."""

    def __init__(self, process: subprocess.Popen, channel: grpc.Channel, port: int, log_path: str | None = None):
        self.process, self.channel, self.port, self.log_path = process, channel, port, log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        """Raise WorkerExitedError if the worker process has ended."""
        code = self.process.poll()
        if code is not None:
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            log = f"; its log is {self.log_path}" if self.log_path else ""
            raise WorkerExitedError(f"the TFF worker_binary (pid {self.pid}) {how}{log}")

    def close(self, timeout: float = 5.0) -> None:
        """Close the channel, then terminate the worker (kill it if it lingers)."""
        self.channel.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def __enter__(self) -> "LocalWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FailFastStub:
    """A TFF executor stub that raises WorkerExitedError once the worker has ended.

    TFF retries a computation forever while its worker is unavailable, so
    without this a worker that crashed (or was stopped) hangs the program.
    """

    def __init__(self, stub, worker: LocalWorker):
        self._stub, self._worker = stub, worker

    def __getattr__(self, name):
        attribute = getattr(self._stub, name)
        if not callable(attribute):
            return attribute

        def checked(*args, **kwargs):
            self._worker.check_alive()
            return attribute(*args, **kwargs)
        return checked


class HideUnusedOpErrors(logging.Filter):
    """Drops TF's "Object was never used" reports about the assert ops of TFF's simulated secure
    sum: dozens of ERROR lines per run about TFF internals, nothing a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Object was never used" not in record.getMessage()


def use_local_tff_worker(
    log_path: str | None = None, secure_aggregation: bool = False, start_timeout: float = 60.0
) -> LocalWorker:
    """Start worker_binary, make it TFF's default context, and return its handle.

    With `secure_aggregation=True`, secure intrinsics (secure_sum, ...) are
    replaced by their plain bodies, as in TFF's test context: secure
    aggregation is simulated, not cryptographically secure.
    """
    binary = os.path.join(os.path.dirname(tff.__file__), "data", "worker_binary")
    with socket.socket() as s:  # ask the OS for a free port
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    libc, parent = ctypes.CDLL(None, use_errno=True), os.getpid()

    def die_with_parent():  # runs in the child between fork and exec
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent already died before prctl
            os._exit(1)

    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [binary, f"--port={port}"], stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT if log_path else log, preexec_fn=die_with_parent,
        start_new_session=True)  # a terminal's Ctrl-C reaches us, and we stop the worker
    if log_path:
        log.close()
    channel = grpc.insecure_channel(f"localhost:{port}")
    worker = LocalWorker(process, channel, port, log_path)
    atexit.register(worker.close)
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        # Exit through atexit on SIGTERM so the worker is stopped and reaped.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    deadline = time.monotonic() + start_timeout
    while True:  # wait until the worker listens
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            state = "not listening" if process.poll() is None else f"exited ({process.returncode})"
            worker.close()
            tail = "(no log_path)"
            if log_path:
                with open(log_path, errors="replace") as f:
                    tail = f.read()[-2000:]
            raise RuntimeError(f"TFF worker_binary {state} on port {port}; log tail:\n{tail}")
        time.sleep(0.05)
    stub = FailFastStub(tff.framework.RemoteExecutorGrpcStub(channel), worker)

    def stack_fn(cardinalities):
        if cardinalities.get(tff.CLIENTS) is None:
            cardinalities[tff.CLIENTS] = 0  # as TFF's default context does
        executor = tff.framework.RemoteExecutor(stub)
        executor.set_cardinalities(cardinalities)
        return executor

    if secure_aggregation:
        logging.getLogger("tensorflow").addFilter(HideUnusedOpErrors())

    def compile_fn(comp):
        if secure_aggregation:
            comp = tff.backends.test.replace_secure_intrinsics_with_bodies(comp)
        return tff.backends.native.desugar_and_transform_to_native(comp)

    tff.framework.set_default_context(tff.framework.SyncExecutionContext(
        executor_fn=tff.framework.ResourceManagingExecutorFactory(stack_fn),
        compiler_fn=compile_fn,
        transform_args=tff.tensorflow.transform_args,
        transform_result=tff.tensorflow.transform_result))
    return worker


REQUIRES: dict[str, tuple[str, ...]] = {
    "WorkerExitedError": (),
    "LocalWorker": ("WorkerExitedError",),
    "FailFastStub": ("LocalWorker",),
    "HideUnusedOpErrors": (),
    "use_local_tff_worker": ("LocalWorker", "FailFastStub", "HideUnusedOpErrors"),
}
