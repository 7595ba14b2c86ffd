"""Where the rounds run, without TensorFlow: the runtime block, `fedlang run --workers N / --worker
HOST:PORT` (usage errors, exit 2, before anything starts) and `fedlang worker --port P`. The emitted
program copies only the launcher its runtime needs: one local worker by default, the worker pool
(several local workers, or remote ones) only when asked for; `fedlang run --workers N` executes the
program emitted for the spec with that runtime."""

import ast
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedlang.checked import RuntimeConfig
from fedlang.cli import main, with_worker_options
from fedlang.diagnostics import Source
from fedlang.pipeline import compile_file, compile_source

from ..conftest import REPO

QUICKSTART = "examples/quickstart.fed"
POOL_ONLY = {"use_tff_workers", "WorkerPool", "connect_worker", "RemoteWorker", "PoolCalls", "wait_until_ready",
             "WorkerUnreachableError"}


@pytest.fixture
def cli(in_repo):
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args))


@pytest.mark.parametrize("args, message", [
    (["--workers", "2", "--worker", "10.0.0.5:8000"], "not both"),
    (["--worker", "10.0.0.5"], "HOST:PORT"),
    (["--worker", "10.0.0.5:http"], "HOST:PORT"),
    (["--worker", "10.0.0.5:70000"], "HOST:PORT"),
    (["--workers", "0"], "--workers"),
    (["--workers", "2", "--set", "train.rounds=1,2"], "not to a sweep"),
    (["--worker-timeout", "30", "--seeds", "2"], "not to a sweep"),
    (["--worker-timeout", "30"], "one local worker does not use it"),
])
def test_bad_worker_options_are_usage_errors(cli, args, message):
    result = cli("run", QUICKSTART, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def _defined(program: str) -> set[str]:
    tree = ast.parse(program)
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def _with_runtime(block: str) -> str:
    text = (REPO / QUICKSTART).read_text() + "\n" + block + "\n"
    return compile_source(Source(QUICKSTART, text), base_dir=REPO / "examples").program()


def test_one_local_worker_copies_only_the_launcher(in_repo):
    program = compile_file(QUICKSTART).program()
    defined = _defined(program)
    assert {"LocalWorker", "use_local_tff_worker", "start_worker_binary", "worker_context", "WorkerExitedError"} <= defined
    assert "simulate_secure_sums" not in defined  # only for a spec with secure aggregation
    assert not defined & POOL_ONLY and "MergeableCompExecutionContext" not in program
    assert "with run, use_local_tff_worker():" in program
    assert '"--workers"' not in program and '"--worker"' not in program and "WORKERS" not in program
    # the launcher that stays is small: the worker code of the quickstart program
    start = min(program.index(f"class {name}") for name in ("WorkerExitedError", "LocalWorker"))
    end = program.index("\n\n\n", program.index("def use_local_tff_worker("))
    assert program[start:end].count("\n") < 90


def test_a_runtime_block_with_local_workers_copies_the_pool(in_repo):
    program = _with_runtime("runtime {\n  workers 3\n}")
    assert POOL_ONLY <= _defined(program) and "tff.framework.MergeableCompExecutionContext(" in program
    assert "# examples/quickstart.fed:32:   workers 3\n# examples/quickstart.fed:33: }\nWORKERS = 3  #" in program
    assert "WORKERS = 3  #" in program and "WORKER_ADDRESSES = []  #" in program and "WORKER_TIMEOUT = 600.0  #" in program
    assert 'parser.add_argument("--workers"' in program and 'parser.add_argument("--worker"' in program
    assert "with run, use_tff_workers(workers, addresses, timeout=args.worker_timeout):" in program


def test_a_runtime_block_with_remote_workers(in_repo):
    program = _with_runtime('runtime {\n  remote ["10.0.0.5:8000", "host-b:8001"]\n  timeout 30\n}')
    assert "WORKERS = 1  #" in program and "WORKER_ADDRESSES = ['10.0.0.5:8000', 'host-b:8001']  #" in program
    assert "WORKER_TIMEOUT = 30.0  #" in program and POOL_ONLY <= _defined(program)


def test_the_fused_path_trains_one_group_per_worker_of_the_pool(in_repo):
    fused = (REPO / QUICKSTART).read_text().replace("  dropout 0.2\n", "")
    assert fused != (REPO / QUICKSTART).read_text()

    def groups(extra: str) -> str:
        program = compile_source(Source(QUICKSTART, fused + extra), base_dir=REPO / "examples").program()
        return next(line for line in program.splitlines() if line.startswith("FUSED_GROUPS ="))

    assert groups("").startswith("FUSED_GROUPS = 1  #")
    assert groups("runtime { workers 3 }\n").startswith("FUSED_GROUPS = 3  #")
    assert groups('runtime { remote ["a:1", "b:2"] }\n').startswith("FUSED_GROUPS = 2  #")


def test_run_with_workers_executes_the_program_emitted_for_that_runtime(in_repo):
    """`fedlang run --workers 2` runs what `fedlang emit` writes for the spec with `runtime { workers 2 }`
    (the same program, less the quoted block lines); the flags replace a runtime block's workers."""
    compiled = compile_file(QUICKSTART)
    assert with_worker_options(compiled, None, (), None) is compiled
    overridden = with_worker_options(compiled, 2, (), None)
    assert overridden.plan.runtime == RuntimeConfig(workers=2)
    by_block = _with_runtime("runtime {\n  workers 2\n}")
    block_lines = ("# examples/quickstart.fed:31: ", "# examples/quickstart.fed:32: ", "# examples/quickstart.fed:33: ")
    strip = lambda p: [l for l in p.splitlines() if not l.startswith(block_lines)]
    assert strip(overridden.program()) == strip(by_block)
    remote = with_worker_options(overridden, None, ("127.0.0.1:9000",), 5.0).plan.runtime
    assert remote == RuntimeConfig(workers=1, remote=("127.0.0.1:9000",), timeout=5.0)
    timeout_only = with_worker_options(overridden, None, (), 7.0).plan.runtime
    assert (timeout_only.workers, timeout_only.timeout) == (2, 7.0)


def test_emit_takes_the_worker_options_of_run(cli):
    """`fedlang emit --workers 2` prints the program `fedlang run --workers 2` executes."""
    result = cli("emit", QUICKSTART, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert result.output == with_worker_options(compile_file(QUICKSTART), 2, (), None).program()
    assert "WORKERS = 2  #" in result.output and "def use_tff_workers(" in result.output
    refused = cli("emit", QUICKSTART, "--workers", "2", "--worker", "h:1")
    assert refused.exit_code == 2 and "not both" in refused.output


def test_fedlang_worker_refuses_a_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "fedlang", "worker", "--port", str(port),
                                 "--log", str(tmp_path / "w.log")], cwd=REPO, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 2
    assert f"port {port} is already in use" in result.stderr


def test_the_runner_starts_the_workers_its_program_names(tmp_path):
    """`fedlang run` starts what the executed program's runtime says; a resumed run's --workers/--worker
    replace a pooled program's workers, and are refused by a one-worker program (it has no pool)."""
    from fedlang.runtime.runner import _start_workers

    calls = []
    pooled = {"use_tff_workers": lambda *a, **k: calls.append(("pool", a, k)), "WORKERS": 3,
              "WORKER_ADDRESSES": [], "WORKER_TIMEOUT": 30.0, "simulate_secure_sums": len}
    _start_workers(pooled, tmp_path, False, None, (), None)
    _start_workers(pooled, tmp_path, True, None, ("h:1",), 5.0)
    single = {"use_local_tff_worker": lambda **k: calls.append(("one", (), k))}
    _start_workers(single, tmp_path, False, None, (), None)
    assert calls == [
        ("pool", (3, []), {"log_dir": str(tmp_path), "timeout": 30.0}),
        ("pool", (1, ("h:1",)), {"log_dir": str(tmp_path), "transform": len, "timeout": 5.0}),
        ("one", (), {"log_path": str(tmp_path / "worker.log")}),
    ]
    with pytest.raises(RuntimeError, match="one local TFF worker"):
        _start_workers(single, tmp_path, False, 2, (), None)


def test_fedlang_worker_starts_its_worker_with_the_programs_launcher(tmp_path):
    """`fedlang worker` imports fedlang/lib/worker_process.py's start_worker_binary, the definition the
    programs copy (the worker's environment is written once): output to the log, its own session, two malloc
    arenas; and it does so without importing TensorFlow."""
    fake = tmp_path / "worker_binary"
    fake.write_text('#!/bin/sh\necho "$1 arenas=$MALLOC_ARENA_MAX session=$(cut -d" " -f6 /proc/$$/stat) pid=$$"\n')
    fake.chmod(0o755)
    code = ("import sys; from fedlang.runtime.worker_service import start_worker_binary; "
            f"log = open({str(tmp_path / 'log')!r}, 'wb'); start_worker_binary({str(fake)!r}, 1234, log).wait(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_federated', 'grpc')))")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
    port, arenas, session, pid = (tmp_path / "log").read_text().split()
    assert (port, arenas) == ("--port=1234", "arenas=2") and session.split("=")[1] == pid.split("=")[1]
    from fedlang.lib import worker_process
    from fedlang.runtime import worker_service
    assert worker_service.start_worker_binary is worker_process.start_worker_binary
