"""Run TFF computations on worker_binary processes whose lifetime this program owns.

TFF's default context starts `worker_binary` itself and leaves it running (and holding our stdout)
after Python exits. Here we start it ourselves: it dies with this process, even on SIGKILL, and its
output goes to a log file. `use_local_tff_worker` runs on one such worker; `use_tff_workers` spreads
each round over several, local or on other machines (a spec's `runtime` block).
"""
import os
import signal
import socket

import grpc
import tensorflow_federated as tff

from .worker_process import start_worker_binary  # copied into programs with this module


class WorkerExitedError(RuntimeError):
    """The TFF worker ended while a computation still needed it."""


class LocalWorker(grpc.UnaryUnaryClientInterceptor):
    """worker_binary on a free local port, its output in `log_path` if given; `close()` stops it.
    Every call on `channel` first checks that it still runs: TFF retries a call to an unavailable
    worker forever (which also covers the start, until it listens), so a crash would hang the run."""

    def __init__(self, log_path=None):
        with socket.socket() as s:  # a free port, from the OS
            s.bind(("localhost", 0))
            port = s.getsockname()[1]
        with open(log_path or os.devnull, "wb") as log:
            binary = os.path.join(os.path.dirname(tff.__file__), "data", "worker_binary")
            self.process = start_worker_binary(binary, port, log)
        self.pid, self.address, self.log_path = self.process.pid, f"localhost:{port}", log_path
        self.channel = grpc.intercept_channel(grpc.insecure_channel(self.address), self)

    def intercept_unary_unary(self, continuation, details, request):
        self.check_alive()
        return continuation(details, request)

    def check_alive(self):
        code = self.process.poll()
        if code is not None:
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            log = f"; its log is {self.log_path}" if self.log_path else ""
            raise WorkerExitedError(f"the TFF worker_binary (pid {self.pid}) {how} (it served {self.address}){log}")

    def close(self):
        self.channel.close()
        self.process.kill()
        self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def worker_context(channel, transform=None, context=tff.framework.SyncExecutionContext):
    """TFF's execution context on the worker at the end of `channel`: TFF's native compilation,
    after `transform` (computation -> computation, e.g. simulate_secure_sums) if given."""
    stub = tff.framework.RemoteExecutorGrpcStub(channel)

    def executor_fn(cardinalities):
        executor = tff.framework.RemoteExecutor(stub)
        executor.set_cardinalities({tff.CLIENTS: 0, **cardinalities})  # as TFF's default context does
        return executor

    def compiler_fn(comp):
        return tff.backends.native.desugar_and_transform_to_native(transform(comp) if transform else comp)

    return context(executor_fn=tff.framework.ResourceManagingExecutorFactory(executor_fn), compiler_fn=compiler_fn,
                   transform_args=tff.tensorflow.transform_args, transform_result=tff.tensorflow.transform_result)


def use_local_tff_worker(log_path=None, transform=None):
    """Start a LocalWorker, make it TFF's default context (see worker_context), and return it."""
    worker = LocalWorker(log_path)
    tff.framework.set_default_context(worker_context(worker.channel, transform))
    return worker


def simulate_secure_sums(comp):
    """`comp` with TFF's secure sums replaced by their plain bodies, as in TFF's test context: the
    numbers of secure aggregation, simulated, not cryptographically secure."""
    return tff.backends.test.replace_secure_intrinsics_with_bodies(comp)


class WorkerUnreachableError(RuntimeError):
    """A worker could not be reached, stopped answering, or failed a call; the message names it."""


class RemoteWorker:
    """A TFF worker on another machine (or port), started there with `fedlang worker --port P`
    or TFF's own `worker_binary --port=P`; `close()` only closes the connection."""

    pid = log_path = None

    def __init__(self, address: str, channel: grpc.Channel):
        self.address, self.channel = address, channel

    def check_alive(self) -> None:
        """Nothing to poll: a remote worker's failure shows as an error of the call."""

    def close(self) -> None:
        self.channel.close()


class PoolCalls(grpc.UnaryUnaryClientInterceptor):
    """Every gRPC call to a worker of a pool: with a deadline (a hung worker or a machine gone from
    the network fails the call instead of blocking the run), counted (`worker.calls`), and failing
    for good with WorkerUnreachableError naming the worker (TFF would retry it forever)."""

    class Details(grpc.ClientCallDetails):
        def __init__(self, details, timeout):
            self.method, self.metadata, self.credentials = details.method, details.metadata, details.credentials
            self.wait_for_ready, self.compression = details.wait_for_ready, details.compression
            self.timeout = timeout

    def __init__(self, worker, seconds: float):
        self.worker, self.seconds = worker, seconds
        worker.calls = 0  # the calls it took part in

    def intercept_unary_unary(self, continuation, details, request):
        self.worker.calls += 1
        outcome = continuation(PoolCalls.Details(details, details.timeout or self.seconds), request)
        if not isinstance(outcome, grpc.RpcError) or "/Dispose" in details.method:  # TFF ignores failed clean-ups
            return outcome
        self.worker.check_alive()  # a local worker that died: say how, with its pid
        code, text = outcome.code(), outcome.details()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            why = f"did not answer within {self.seconds:g} s"
        elif code == grpc.StatusCode.UNAVAILABLE:
            why = f"cannot be reached ({text})"
        else:
            why = f"failed a call ({code.name if code else 'error'}: {text})"
        raise WorkerUnreachableError(f"the TFF worker at {self.worker.address} {why}") from None


def connect_worker(address: str, timeout: float = 20.0) -> RemoteWorker:
    """Connect to a running worker at host:port; WorkerUnreachableError if it does not answer."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"a worker address is HOST:PORT, not {address!r}")
    start = f"start it there with `fedlang worker --port {port}` (or TFF 0.87's worker_binary --port={port})"
    try:  # a refused or unroutable address fails here at once, with the system's reason
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise WorkerUnreachableError(f"the TFF worker at {address} cannot be reached ({exc.strerror or exc}); "
                                     f"{start}") from None
    worker = RemoteWorker(address, grpc.insecure_channel(address, options=[("grpc.max_send_message_length", -1),
                                                                           ("grpc.max_receive_message_length", -1)]))
    wait_until_ready(worker, timeout, start)
    return worker


def wait_until_ready(worker, timeout, hint):
    """Wait until `worker` answers on its channel (a pool fails a call to a worker not yet listening)."""
    try:
        grpc.channel_ready_future(worker.channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        worker.check_alive()  # a local worker that exited says how
        worker.close()
        raise WorkerUnreachableError(f"the TFF worker at {worker.address} cannot be reached (no answer within "
                                     f"{timeout:g} s); {hint}") from None


class WorkerPool:
    """The workers of one run; `close()` stops the local ones and closes every connection."""

    def __init__(self, workers: list):
        self.workers = workers

    @property
    def addresses(self) -> list[str]:
        return [w.address for w in self.workers]

    def kill(self) -> None:
        """A signal handler's way to make the running computation fail at once."""
        for worker in self.workers:
            if isinstance(worker, LocalWorker):
                worker.process.kill()
            else:
                worker.close()

    def close(self) -> None:
        for worker in self.workers:
            worker.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def use_tff_workers(workers: int = 1, addresses=(), log_dir: str | None = None, transform=None,
                    timeout: float = 600.0, connect_timeout: float = 20.0) -> WorkerPool:
    """Make TFF's default context run on `workers` local worker_binary processes (or on the
    running workers at `addresses`, HOST:PORT each) and return them as a WorkerPool.

    One local worker runs every computation whole, as use_local_tff_worker. Otherwise each round is
    split by TFF's mergeable execution context: every worker trains its share of the round's clients
    and aggregates them, the partial aggregates are merged, and the server update runs once. Local
    workers die with this process; every gRPC call has a `timeout` (seconds), and a failing worker
    is named. `transform` is applied to each computation before the split (see worker_context).
    """
    pool = WorkerPool([])
    try:
        for address in addresses:
            pool.workers.append(connect_worker(address, connect_timeout))
        for i in range(0 if addresses else workers):
            name = "worker.log" if workers == 1 else f"worker-{i + 1}.log"
            pool.workers.append(LocalWorker(os.path.join(log_dir, name) if log_dir else None))
        if len(pool.workers) == 1 and not addresses:
            tff.framework.set_default_context(worker_context(pool.workers[0].channel, transform))
            return pool
        for worker in pool.workers:  # a local worker may take longer to start on a loaded machine than to connect
            log = f"see its log {worker.log_path}" if getattr(worker, "log_path", None) else "see its log"
            wait_until_ready(worker, max(connect_timeout, 60.0) if isinstance(worker, LocalWorker) else connect_timeout,
                             log)
    except BaseException:
        pool.close()
        raise
    contexts = [worker_context(grpc.intercept_channel(w.channel, PoolCalls(w, timeout)), None,
                               tff.framework.AsyncExecutionContext) for w in pool.workers]

    def split_at_the_aggregation(comp):
        if transform is None:
            return tff.backends.native.compile_to_mergeable_comp_form(comp)
        # Transformed before the split, as on one worker. That rebuilds the computation from its proto,
        # so the result's Python containers are put back.
        form = tff.backends.native.compile_to_mergeable_comp_form(transform(comp))
        after_merge = tff.framework.ConcreteComputation.with_type(form.after_merge, tff.FunctionType(
            form.after_merge.type_signature.parameter, comp.type_signature.result))
        return tff.framework.MergeableCompForm(up_to_merge=form.up_to_merge, merge=form.merge, after_merge=after_merge)

    tff.framework.set_default_context(tff.framework.MergeableCompExecutionContext(
        contexts, compiler_fn=split_at_the_aggregation))
    return pool


REQUIRES: dict[str, tuple[str, ...]] = {
    "WorkerExitedError": (),
    "LocalWorker": ("WorkerExitedError",),  # and worker_process.py: start_worker_binary
    "worker_context": (),
    "use_local_tff_worker": ("LocalWorker", "worker_context"),
    "simulate_secure_sums": (),
    "WorkerUnreachableError": (),
    "RemoteWorker": (),
    "PoolCalls": ("WorkerUnreachableError",),
    "wait_until_ready": ("WorkerUnreachableError",),
    "connect_worker": ("RemoteWorker", "WorkerUnreachableError", "wait_until_ready"),
    "WorkerPool": ("LocalWorker",),
    "use_tff_workers": ("LocalWorker", "PoolCalls", "WorkerPool", "connect_worker", "wait_until_ready",
                        "worker_context"),
}
