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
