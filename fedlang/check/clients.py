"""The clients pass: replay the run's data split with NumPy, so `check` knows every client's size.

The emitted `load_data()` makes its draws from one generator seeded with the spec's seed: the
synthetic data (if that is the source), the held-out test set, then the partition. This pass
makes the same draws with the same functions of `fedlang.lib.data`, on the labels alone, so a
split that cannot work (a Dirichlet draw that leaves a client under `min_examples`, a hold-out
that empties a set) is reported at its line, and the summary shows the real client sizes.
`tests/tff/test_client_sizes.py` holds this replay to the emitted program.
"""

from __future__ import annotations

import numpy as np

from ..checked import Choice
from ..diagnostics import Diagnostics
from ..lib import data as datalib
from ..lib.client_tests import checked_split_client_tests
from ..constructs.partitions import PARTITION_BY_NAME, client_tests, holdout
from ..constructs.sources import SKLEARN_SETS, SOURCE_BY_NAME, bundled_labels  # noqa: F401  (re-exported)
from ..plan import PyCall, PyRef


def replay_client_sizes(
    source: Choice, test: Choice, partition: Choice, seed: int,
    labels: np.ndarray | None, client_ids: np.ndarray | None, diags: Diagnostics,
    client_test_sizes: list[int] | None = None,
) -> tuple[int, ...] | None:
    """Examples per client, drawn as the run draws them; None if unknown (EMNIST) or on an error.

    With `test per_client(…)` these are the training examples, and `client_test_sizes` (a list)
    receives each client's test examples."""
    rng = np.random.default_rng(seed)
    replayed = SOURCE_BY_NAME[source.name].replay(source, rng, labels, client_ids)
    if replayed is None:
        if source.name in SKLEARN_SETS:  # the labels live in scikit-learn's data folder
            diags.warning("W501", f"the {partition.name} split of {source.name} was not checked: scikit-learn is "
                                  f"not installed here, and its data files hold the labels", partition.span,
                          "install scikit-learn (it is needed to run the spec anyway) to have `check` replay "
                          "the split and show every client's size")
        return None
    labels, client_ids = replayed
    first = partition.args.get("first")  # natural(first = N)
    streamed = SOURCE_BY_NAME[source.name].streamed
    held_out = holdout(test, streamed)  # the statement load_data() writes before the split
    if streamed:  # one client per file; a hold-out is each file's tail
        counts = np.bincount(client_ids).tolist()[:first]
        if held_out is None:
            return tuple(counts)
        try:
            return tuple(evaluate(held_out.call, {"counts": counts}))
        except ValueError as exc:
            diags.error("E507", str(exc), test.span, "hold out a fraction that leaves examples on both sides")
            return None
    labels = labels.astype(np.int64)
    if held_out is not None:
        try:
            train_idx, _ = evaluate(held_out.call, {"y": labels, "rng": rng})
        except datalib.DataError as exc:
            diags.error("E507", exc.message, test.span, exc.hint)
            return None
        labels = labels[train_idx]
        client_ids = client_ids[train_idx] if client_ids is not None else None
    split = PARTITION_BY_NAME[partition.name].split(partition)  # the call load_data() makes
    try:
        parts = evaluate(split, {"y": labels, "client_ids": client_ids, "rng": rng})[:first]
    except datalib.DataError as exc:
        diags.error("E506", f"the {partition.name} partition fails: {exc.message}", partition.span, exc.hint)
        return None
    own_tests = client_tests(test)  # after the partition, with the same generator (as load_data does)
    if own_tests is not None:
        try:
            parts, test_parts = evaluate(own_tests, {"parts": parts, "rng": rng})
        except ValueError as exc:
            diags.error("E530", str(exc), test.span,
                        "keep a larger fraction for testing, or give clients more examples (fewer clients, a "
                        "larger dirichlet alpha or min_examples)")
            return None
        if client_test_sizes is not None:
            client_test_sizes.extend(len(p) for p in test_parts)
    return tuple(len(p) for p in parts)


# Calls of the data statements that are not fedlang/lib/data.py functions.
_NOT_IN_DATA = {"len": len, "split_client_tests": checked_split_client_tests}


def evaluate(call: PyCall, names: dict[str, object]):
    """Run a lowered data statement's call here, with `names` for its references: a fedlang/lib/data.py
    call through its `checked_` wrapper (the same draws as the program's copied core, with DataErrors
    that say what is wrong), or one of _NOT_IN_DATA."""
    def value(v):
        return names[v.name] if isinstance(v, PyRef) else evaluate(v, names) if isinstance(v, PyCall) else v

    function = _NOT_IN_DATA.get(call.func) or getattr(datalib, "checked_" + call.func, None) \
        or getattr(datalib, call.func)
    return function(*(value(v) for k, v in call.args if k is None),
                    **{k: value(v) for k, v in call.args if k is not None})
