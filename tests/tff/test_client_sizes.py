"""`fedlang check` reports each client's size by replaying the split with NumPy; the emitted
program's own `load_data()` must give its clients exactly those sizes (and the same examples)."""

from pathlib import Path

import numpy as np
import pytest

from fedlang.pipeline import compile_file

from .support import REPO, load_program

pytestmark = pytest.mark.tff

SPECS = sorted((REPO / "examples").glob("*.fed")) + sorted((REPO / "tests/fixtures/golden").glob("*.fed"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_check_reports_the_client_sizes_the_program_draws(spec: Path, monkeypatch):
    monkeypatch.chdir(REPO)  # golden specs name their data files relative to the checkout
    compiled = compile_file(spec.relative_to(REPO))
    if compiled.checked.data.source.name == "emnist":
        pytest.skip("EMNIST's clients are known only at run time, from TFF's cache (offline here)")
    loaded = load_program(compiled)["load_data"]()
    clients, test = loaded[:2]
    sizes = compiled.checked.data.client_sizes
    assert sizes is not None
    assert tuple(len(y) for _, y in clients) == sizes
    test_sizes = compiled.checked.data.client_test_sizes
    if test_sizes is not None:  # test per_client: each client's own test set, as check printed it
        assert len(loaded) == 3
        assert tuple(len(y) for _, y in loaded[2]) == test_sizes
    else:
        assert len(loaded) == 2
    facts = compiled.checked.data.facts
    if facts.examples is not None:  # every example is held out, with one client, or in its own test set
        held_out = len(test[1]) if test is not None else 0
        assert sum(sizes) + held_out + sum(test_sizes or ()) == facts.examples
