"""Fixtures for the TFF tests (helpers are in support.py)."""

import pytest

from .support import assert_no_worker_left


@pytest.fixture(scope="module")
def tff_worker():
    """One local TFF worker per test module, set as TFF's default context; closed afterwards."""
    from fedlang.lib.tff_worker import use_local_tff_worker

    worker = use_local_tff_worker()
    yield worker
    worker.close()
    assert worker.process.poll() is not None, "the module's worker_binary did not stop"


@pytest.fixture(scope="session", autouse=True)
def _no_leaked_workers_at_end():
    yield
    assert_no_worker_left(within=5.0)


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory):
    """One `fedlang run` of the quickstart (evaluate every 5) for QUICKSTART_ROUNDS rounds, shared
    by the end-to-end and the run-vs-emit tests. Returns (spec path, run dir, CompletedProcess)."""
    from .support import QUICKSTART_ROUNDS, quickstart_spec_text, run_fedlang

    work = tmp_path_factory.mktemp("quickstart")
    spec = work / "quickstart.fed"
    spec.write_text(quickstart_spec_text())
    out = work / "run"
    result = run_fedlang("run", spec, "--rounds", QUICKSTART_ROUNDS, "--out", out)
    assert_no_worker_left()
    return spec, out, result
