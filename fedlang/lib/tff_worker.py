"""Run TFF computations on worker_binary processes whose lifetime this program owns.

TFF's default context starts `worker_binary` itself and leaves it running (and holding our stdout)
after Python exits. Here we start it ourselves: it dies with this process, even on SIGKILL, and its
output goes to a log file. `use_local_tff_worker` runs on one such worker; `use_tff_workers` spreads
each round over several, local or on other machines (a spec's `runtime` block).
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
    """TFF's worker_binary on a free local port, tied to this process; `close()` stops it (idempotent).

    It dies with us even on SIGKILL (PR_SET_PDEATHSIG), in its own session (a terminal's Ctrl-C
    reaches us, and we stop it), its output in `log_path` (never our stdout: safe to pipe).
    """

    def __init__(self, log_path: str | None = None, start_timeout: float = 60.0):
        binary = os.path.join(os.path.dirname(tff.__file__), "data", "worker_binary")
        with socket.socket() as s:  # ask the OS for a free port
            s.bind(("localhost", 0))
            self.port = s.getsockname()[1]
        self.address, self.log_path = f"localhost:{self.port}", log_path
        libc, parent = ctypes.CDLL(None, use_errno=True), os.getpid()

        def die_with_parent():  # runs in the child between fork and exec
            libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent already died before prctl
                os._exit(1)

        # Two malloc arenas: with glibc's default (8 per core) the worker's RSS grows with every call.
        env = {**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
        log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen([binary, f"--port={self.port}"], stdin=subprocess.DEVNULL, stdout=log, env=env,
                                        stderr=subprocess.STDOUT, preexec_fn=die_with_parent, start_new_session=True)
        if log_path:
            log.close()
        self.pid, self.channel = self.process.pid, grpc.insecure_channel(self.address)
        atexit.register(self.close)
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # exit through atexit
        deadline = time.monotonic() + start_timeout
        while True:  # wait until the worker listens
            try:
                socket.create_connection(("localhost", self.port), timeout=1).close()
                return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                state = "not listening" if self.process.poll() is None else f"exited ({self.process.returncode})"
                self.close()
                tail = "(no log_path)"
                if log_path:
                    with open(log_path, errors="replace") as f:
                        tail = f.read()[-2000:]
                raise RuntimeError(f"TFF worker_binary {state} on port {self.port}; log tail:\n{tail}")
            time.sleep(0.05)

    def check_alive(self) -> None:
        """Raise WorkerExitedError if the worker process has ended."""
        code = self.process.poll()
        if code is not None:
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            log = f"; its log is {self.log_path}" if self.log_path else ""
            raise WorkerExitedError(f"the TFF worker_binary (pid {self.pid}) {how} (it served {self.address}){log}")

    def kill(self) -> None:
        """Stop the worker at once (a signal handler's way to make a running computation fail)."""
        if self.process.poll() is None:
            self.process.kill()

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

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FailFastStub:
    """A worker's TFF executor stub that raises WorkerExitedError once the worker has ended (TFF
    retries a computation forever while its worker is unavailable: a crash would hang the run)."""

    def __init__(self, stub, worker):
        self._stub, self._worker = stub, worker

    def __getattr__(self, name):
        attribute = getattr(self._stub, name)
        if not callable(attribute):
            return attribute

        def checked(*args, **kwargs):
            self._worker.check_alive()
            return attribute(*args, **kwargs)
        return checked


def worker_context(stub, secure_aggregation: bool = False, context=None):
    """TFF's execution context (SyncExecutionContext unless `context`) on one worker's executor stub,
    compiled with TFF's native lowering. With `secure_aggregation`, secure sums are replaced by their
    plain bodies, as in TFF's test context: simulated, not cryptographically secure."""
    if secure_aggregation:  # TF reports the simulated secure sum's unused assert ops as errors
        logging.getLogger("tensorflow").addFilter(lambda record: "Object was never used" not in record.getMessage())

    def stack_fn(cardinalities):
        if cardinalities.get(tff.CLIENTS) is None:
            cardinalities[tff.CLIENTS] = 0  # as TFF's default context does
        executor = tff.framework.RemoteExecutor(stub)
        executor.set_cardinalities(cardinalities)
        return executor

    def compile_fn(comp):
        if secure_aggregation:
            comp = tff.backends.test.replace_secure_intrinsics_with_bodies(comp)
        return tff.backends.native.desugar_and_transform_to_native(comp)

    return (context or tff.framework.SyncExecutionContext)(
        executor_fn=tff.framework.ResourceManagingExecutorFactory(stack_fn), compiler_fn=compile_fn,
        transform_args=tff.tensorflow.transform_args, transform_result=tff.tensorflow.transform_result)


def use_local_tff_worker(log_path: str | None = None, secure_aggregation: bool = False,
                         start_timeout: float = 60.0) -> LocalWorker:
    """Start worker_binary, make it TFF's default context, and return its handle."""
    worker = LocalWorker(log_path, start_timeout)
    stub = FailFastStub(tff.framework.RemoteExecutorGrpcStub(worker.channel), worker)
    tff.framework.set_default_context(worker_context(stub, secure_aggregation))
    return worker


class WorkerUnreachableError(RuntimeError):
    """A worker could not be reached, stopped answering, or failed a call; the message names it."""


class RemoteWorker:
    """A TFF worker on another machine (or port), started there with `fedlang worker --port P`
    or TFF's own `worker_binary --port=P`; `close()` only closes the connection."""

    pid = None
    log_path = None
    calls = 0  # gRPC calls made to this worker (each takes part in the run)

    def __init__(self, address: str, channel: grpc.Channel):
        self.address, self.channel = address, channel

    def check_alive(self) -> None:
        """Nothing to poll: a remote worker's failure shows as an error of the call."""

    def kill(self) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()


class CallDeadline(grpc.UnaryUnaryClientInterceptor):
    """Gives every gRPC call to a worker a deadline, so a worker that stops answering (a hung
    process, a machine gone from the network) fails the call instead of blocking the run."""

    class Details(grpc.ClientCallDetails):
        def __init__(self, details, timeout):
            self.method, self.metadata, self.credentials = details.method, details.metadata, details.credentials
            self.wait_for_ready, self.compression = details.wait_for_ready, details.compression
            self.timeout = timeout

    def __init__(self, seconds: float):
        self.seconds = seconds

    def intercept_unary_unary(self, continuation, client_call_details, request):
        if client_call_details.timeout is None:
            client_call_details = CallDeadline.Details(client_call_details, self.seconds)
        return continuation(client_call_details, request)


class NamedWorkerStub(FailFastStub):
    """A worker's executor stub whose failures name the worker (host:port) and are final.

    TFF would retry an unavailable worker forever; here an unreachable worker, a call past its
    deadline, or an error the worker reports ends the computation with WorkerUnreachableError.
    """

    def __init__(self, stub, worker, timeout: float):
        super().__init__(stub, worker)
        self._timeout = timeout

    def __getattr__(self, name):
        attribute = getattr(self._stub, name)
        if not callable(attribute) or name.startswith("dispose"):  # TFF ignores failed clean-ups
            return attribute

        def checked(*args, **kwargs):
            self._worker.check_alive()
            self._worker.calls = getattr(self._worker, "calls", 0) + 1  # how many calls it took part in
            try:
                return attribute(*args, **kwargs)
            except grpc.RpcError as exc:
                self._worker.check_alive()  # a local worker that died: say how, with its pid
                code = exc.code() if isinstance(exc, grpc.Call) else None
                details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    why = f"did not answer within {self._timeout:g} s"
                elif code == grpc.StatusCode.UNAVAILABLE:
                    why = f"cannot be reached ({details})"
                else:
                    why = f"failed a call ({code.name if code else 'error'}: {details})"
                raise WorkerUnreachableError(f"the TFF worker at {self._worker.address} {why}") from None
        return checked


def connect_worker(address: str, timeout: float = 20.0) -> RemoteWorker:
    """Connect to a running worker at host:port; WorkerUnreachableError if it does not answer."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"a worker address is HOST:PORT, not {address!r}")
    try:  # a refused or unroutable address fails here at once, with the system's reason
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise WorkerUnreachableError(
            f"the TFF worker at {address} cannot be reached ({exc.strerror or exc}); start it there with "
            f"`fedlang worker --port {port}` (or TFF 0.87's worker_binary --port={port})") from None
    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", -1),
                                                      ("grpc.max_receive_message_length", -1)])
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        raise WorkerUnreachableError(
            f"the TFF worker at {address} cannot be reached (no answer within {timeout:g} s); start it there with "
            f"`fedlang worker --port {port}` (or TFF 0.87's worker_binary --port={port})") from None
    return RemoteWorker(address, channel)


class WorkerPool:
    """The workers of one run; `close()` stops the local ones and closes every connection."""

    def __init__(self, workers: list):
        self.workers = workers

    @property
    def addresses(self) -> list[str]:
        return [w.address for w in self.workers]

    def kill(self) -> None:
        for worker in self.workers:
            worker.kill()

    def close(self) -> None:
        for worker in self.workers:
            worker.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def use_tff_workers(workers: int = 1, addresses=(), log_dir: str | None = None, secure_aggregation: bool = False,
                    timeout: float = 600.0, connect_timeout: float = 20.0) -> WorkerPool:
    """Make TFF's default context run on `workers` local worker_binary processes (or on the
    running workers at `addresses`, HOST:PORT each) and return them as a WorkerPool.

    One worker runs every computation whole. Several run each round split by TFF's mergeable
    execution context: every worker trains its share of the round's clients and aggregates them,
    the partial aggregates are merged, and the server update runs once. Local workers die with
    this process; every gRPC call has a `timeout` (seconds), and a failing worker is named.
    """
    pool = WorkerPool([])
    try:
        if addresses:
            for address in addresses:
                pool.workers.append(connect_worker(address, connect_timeout))
        else:
            for i in range(workers):
                name = "worker.log" if workers == 1 else f"worker-{i + 1}.log"
                pool.workers.append(LocalWorker(os.path.join(log_dir, name) if log_dir else None))
    except BaseException:
        pool.close()
        raise
    stubs = []
    for worker in pool.workers:
        if len(pool.workers) == 1 and worker.pid is not None:
            stubs.append(FailFastStub(tff.framework.RemoteExecutorGrpcStub(worker.channel), worker))
        else:
            channel = grpc.intercept_channel(worker.channel, CallDeadline(timeout))
            stubs.append(NamedWorkerStub(tff.framework.RemoteExecutorGrpcStub(channel), worker, timeout))
    if len(stubs) == 1:
        tff.framework.set_default_context(worker_context(stubs[0], secure_aggregation))
        return pool
    contexts = [worker_context(stub, secure_aggregation, tff.framework.AsyncExecutionContext) for stub in stubs]

    def split_at_the_aggregation(comp):
        if not secure_aggregation:
            return tff.backends.native.compile_to_mergeable_comp_form(comp)
        # Secure sums become plain ones before the split, as on one worker; that rebuilds the
        # computation from its proto, so the result's Python containers are put back.
        result_type = comp.type_signature.result
        form = tff.backends.native.compile_to_mergeable_comp_form(
            tff.backends.test.replace_secure_intrinsics_with_bodies(comp))
        after_merge = tff.framework.ConcreteComputation.with_type(
            form.after_merge, tff.FunctionType(form.after_merge.type_signature.parameter, result_type))
        return tff.framework.MergeableCompForm(up_to_merge=form.up_to_merge, merge=form.merge, after_merge=after_merge)

    tff.framework.set_default_context(tff.framework.MergeableCompExecutionContext(
        contexts, compiler_fn=split_at_the_aggregation))
    return pool


REQUIRES: dict[str, tuple[str, ...]] = {
    "WorkerExitedError": (),
    "LocalWorker": ("WorkerExitedError",),
    "FailFastStub": (),
    "worker_context": (),
    "use_local_tff_worker": ("FailFastStub", "LocalWorker", "worker_context"),
    "WorkerUnreachableError": (),
    "RemoteWorker": (),
    "CallDeadline": (),
    "NamedWorkerStub": ("FailFastStub", "WorkerUnreachableError"),
    "connect_worker": ("RemoteWorker", "WorkerUnreachableError"),
    "WorkerPool": (),
    "use_tff_workers": ("CallDeadline", "FailFastStub", "LocalWorker", "NamedWorkerStub", "WorkerPool",
                        "connect_worker", "worker_context"),
}
