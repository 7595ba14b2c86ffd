"""`fedlang run --workers N / --worker HOST:PORT` and `fedlang worker --port P`, without TensorFlow:
bad combinations are usage errors (exit 2) before anything starts, the emitted program carries
the same options, and `fedlang worker` refuses a port in use."""

import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from fedlang.cli import main
from fedlang.pipeline import compile_file

from ..conftest import REPO

QUICKSTART = "examples/quickstart.fed"


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
])
def test_bad_worker_options_are_usage_errors(cli, args, message):
    result = cli("run", QUICKSTART, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_emitted_program_takes_the_worker_options(in_repo):
    program = compile_file(QUICKSTART).program()
    assert 'parser.add_argument("--workers"' in program and 'parser.add_argument("--worker"' in program
    assert "with use_tff_workers(args.workers, args.worker, timeout=args.worker_timeout):" in program
    assert "def use_tff_workers(" in program and "tff.framework.MergeableCompExecutionContext(" in program


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
