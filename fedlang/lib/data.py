"""Data loading, splitting, partitioning and scaling for fedlang experiments.

Everything here uses only numpy and the standard library, so the fedlang compiler can copy
these functions verbatim into the standalone programs it generates. All randomness comes from
an explicit ``rng: np.random.Generator`` argument, so a run is reproducible for a given seed.

Each draw is written once, as a short unchecked core (``partition_dirichlet``, ``holdout_split``,
…): that is what programs copy, since `fedlang check` has already proved the arguments a program
passes. Its ``checked_`` wrapper tests the arguments and then calls the core; check's replay of
the run's split and other callers use the wrappers, so both make the same draws.

Errors are raised as ``ValueError`` (``FileNotFoundError`` for a missing file) with a message
naming the file, the key, column or line, and what was expected; the ones a spec can cause are
``DataError``s, whose fields say what is wrong without anyone reading the message.

``REQUIRES`` at the bottom maps each function to the helpers of this module it calls.
"""

import array
import csv
import math
import os

import numpy as np


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


class DataError(ValueError):
    """Data that cannot be used: `kind` says what is wrong, `name` which array or column,
    `names` the arrays or columns the file has, `hint` how to fix it (the text shown is
    "where: message; hint")."""

    def __init__(self, message, kind, name=None, names=(), hint=None, where=None):
        super().__init__((f"{where}: " if where else "") + message + (f"; {hint}" if hint else ""))
        self.message, self.kind, self.name, self.names, self.hint = message, kind, name, tuple(names), hint


def _check_rng(rng, where):
    """Raise a clear error unless ``rng`` is a numpy Generator."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"{where}: rng must be a numpy random Generator, e.g. np.random.default_rng(0); "
            f"got {type(rng).__name__}"
        )


def _cell_kind(cell):
    """What a data cell holds, in words (messages describe a file's contents, never quote them)."""
    if not cell:
        return "an empty cell"
    try:
        value = float(cell)
    except ValueError:
        return f"text ({len(cell)} characters)"
    if not math.isfinite(value):
        return "a non-finite number (nan or inf)"
    if value < 0:
        return "a negative number"
    return "a fraction" if value != int(value) else "a number"


def _check_int(value, name, where, minimum):
    """Return ``value`` as a Python int, raising a clear error if it is not an int >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{where}: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be at least {minimum}, got {value}")
    return int(value)


def _check_labels(labels, where):
    """Return ``labels`` as a 1-D int64 array, raising a clear error otherwise."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{where}: labels must be a 1-D array, got shape {labels.shape}")
    if labels.size and labels.dtype.kind not in "biu":
        if labels.dtype.kind != "f" or not np.all(np.isfinite(labels)) or not np.all(
            labels == np.round(labels)
        ):
            raise ValueError(f"{where}: labels must be integers, got dtype {labels.dtype}")
    return labels.astype(np.int64)


def _encode_client_ids(values, source):
    """Turn raw client ids into an int64 array.

    Integer ids (or whole-number floats) are kept as they are. Any other ids (for example
    strings such as "alice") are numbered 0, 1, 2, ... in order of first appearance.
    ``source`` names where the ids came from, for error messages.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{source}: client ids must be 1-D, got shape {values.shape}")
    if values.dtype.kind in "ib":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        if np.all(np.isfinite(values)) and np.all(values == np.round(values)) \
                and np.all(np.abs(values) <= 2**53):
            return values.astype(np.int64)
        raise ValueError(f"{source}: client ids must be whole numbers (at most 2**53) or strings")
    if values.dtype.kind == "u" and len(values) and values.max() > 2**63 - 1:
        raise ValueError(f"{source}: client ids must be at most 2**63 - 1")
    if values.dtype.kind == "u":
        return values.astype(np.int64)
    # Strings (or other objects): number them in order of first appearance.
    codes = {}
    encoded = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values.tolist()):
        encoded[i] = codes.setdefault(value, len(codes))
    return encoded


# ---------------------------------------------------------------------------------------------
# Synthetic data: unchecked cores, which programs copy, and checked_ wrappers that call them
# ---------------------------------------------------------------------------------------------


def synthetic_fedprox(alpha, beta, num_devices=30, num_features=60, num_classes=10, iid=False, rng=None):
    """The FedProx paper's Synthetic(alpha, beta) (Li et al., 2020): (x float32, y int64, client ids int64).

    Device k has int(lognormal(4, 2)) + 50 examples x ~ N(v_k, Sigma), Sigma_jj = j^-1.2, labelled
    argmax(W_k x + b_k). Its model W_k, b_k ~ N(u_k, 1) with u_k ~ N(0, alpha) (alpha: how much models
    differ) and v_k ~ N(B_k, 1) with B_k ~ N(0, beta) (beta: how much inputs differ). With iid, every
    device shares one W, b ~ N(0, 1) and the input mean 0.
    """
    samples_per_device = rng.lognormal(4, 2, num_devices).astype(np.int64) + 50
    model_means = rng.normal(0, alpha, num_devices)  # u_k, used for both W_k and b_k
    input_centres = rng.normal(0, beta, num_devices)  # B_k
    feature_std = np.arange(1, num_features + 1, dtype=np.float64) ** (-1.2 / 2)  # sqrt(Sigma_jj)
    if iid:
        shared_w, shared_b = rng.normal(0, 1, (num_features, num_classes)), rng.normal(0, 1, num_classes)
    xs, ys = [], []
    for k in range(num_devices):
        if iid:
            w, b, mean_x = shared_w, shared_b, np.zeros(num_features)
        else:
            w = rng.normal(model_means[k], 1, (num_features, num_classes))
            b = rng.normal(model_means[k], 1, num_classes)
            mean_x = rng.normal(input_centres[k], 1, num_features)
        x = mean_x + feature_std * rng.standard_normal((samples_per_device[k], num_features))
        ys.append(np.argmax(x @ w + b, axis=1))  # softmax is monotone: its argmax is the logits' argmax
        xs.append(x)
    client_ids = np.repeat(np.arange(num_devices, dtype=np.int64), samples_per_device)
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64), client_ids


def checked_synthetic_fedprox(
    alpha: float,
    beta: float,
    num_devices: int = 30,
    num_features: int = 60,
    num_classes: int = 10,
    iid: bool = False,
    rng=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """synthetic_fedprox, after checking its arguments; ``rng`` may also be an int seed or None."""
    where = "synthetic_fedprox"
    num_devices = _check_int(num_devices, "num_devices", where, 1)
    num_features = _check_int(num_features, "num_features", where, 1)
    num_classes = _check_int(num_classes, "num_classes", where, 2)
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{where}: {name} must be a number >= 0, got {value!r}")
    return synthetic_fedprox(alpha, beta, num_devices, num_features, num_classes, iid, np.random.default_rng(rng))


def markov_sequences(vocab, clients, length, window=8, skew=0.8, concentration=0.1, rng=None):
    """Next-token data where each client's text follows its own Markov chain (non-IID by construction):
    (x int32 [n, window], y int64 [n], client ids int64 [n]), n = clients * (length - window).

    A shared transition matrix S and one C_k per client have Dirichlet(concentration) rows; client k
    writes `length` tokens from P_k = (1 - skew) S + skew C_k, starting anywhere. Every window of
    `window` tokens is an example labelled with the token that follows it.
    """
    shared = rng.dirichlet(np.full(vocab, float(concentration)), size=vocab)
    own = rng.dirichlet(np.full(vocab, float(concentration)), size=(clients, vocab))
    cumulative = np.cumsum((1 - skew) * shared + skew * own, axis=2)  # [clients, from, to]
    cumulative[:, :, -1] = 1.0  # guard against rounding: every draw lands on a token
    text = np.empty((clients, length), dtype=np.int64)
    text[:, 0] = rng.integers(vocab, size=clients)
    for t in range(1, length):
        rows = cumulative[np.arange(clients), text[:, t - 1]]  # [clients, vocab]
        text[:, t] = (rows < rng.random(clients)[:, None]).sum(axis=1)
    starts = np.arange(length - window)
    x = text[:, starts[:, None] + np.arange(window)].reshape(-1, window).astype(np.int32)
    client_ids = np.repeat(np.arange(clients, dtype=np.int64), length - window)
    return x, text[:, starts + window].reshape(-1).astype(np.int64), client_ids


def checked_markov_sequences(
    vocab: int,
    clients: int,
    length: int,
    window: int = 8,
    skew: float = 0.8,
    concentration: float = 0.1,
    rng=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """markov_sequences, after checking its arguments; ``rng`` may also be an int seed or None."""
    where = "markov_sequences"
    vocab = _check_int(vocab, "vocab", where, 2)
    clients = _check_int(clients, "clients", where, 1)
    window = _check_int(window, "window", where, 1)
    length = _check_int(length, "length", where, window + 1)
    if not (isinstance(skew, (int, float, np.number)) and 0 <= skew <= 1):
        raise ValueError(f"{where}: skew must be between 0 and 1, got {skew!r}")
    if not (isinstance(concentration, (int, float, np.number)) and concentration > 0):
        raise ValueError(f"{where}: concentration must be a positive number, got {concentration!r}")
    return markov_sequences(vocab, clients, length, window, skew, concentration, np.random.default_rng(rng))


# ---------------------------------------------------------------------------------------------
# Files: short loaders, which programs copy, and checked_ loaders that test every cell as they
# read (what `fedlang check` reads; tests hold the two equal on every file check accepts)
# ---------------------------------------------------------------------------------------------


def load_npz(path, x_key="x", y_key="y", client_key=None):
    """(x float32 [n, ...], y int64 [n], client ids int64 [n] or None) from the arrays of an .npz file;
    client ids that are not numbers (e.g. names) are numbered 0, 1, … in order of first appearance."""
    with np.load(path, allow_pickle=False) as archive:
        x, y = archive[x_key].astype(np.float32), archive[y_key].reshape(-1)
        ids = archive[client_key] if client_key is not None else None
    if y.dtype.kind not in "biu" and not np.all(y == np.floor(y)):  # also NaN; check refuses these (E501)
        raise ValueError(f"{path}: the labels ({y_key}) must be whole numbers, the classes' indices")
    y = y.astype(np.int64)
    if ids is None or ids.dtype.kind in "biuf":
        return x, y, None if ids is None else ids.astype(np.int64)
    numbers = {}
    return x, y, np.array([numbers.setdefault(i, len(numbers)) for i in ids.tolist()], dtype=np.int64)


def checked_load_npz(
    path: str, x_key: str = "x", y_key: str = "y", client_key: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """load_npz with every check: what `fedlang check` reads (tests hold the two equal on good files).

    Returns (x float32 [n, ...], y int64 [n], client_ids int64 [n] or None). Labels may be
    stored as floats if they are whole numbers. String client ids are numbered 0, 1, ... in
    order of first appearance. Pickled (object) arrays are refused.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file not found")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise ValueError(
            f"{path} is a single-array .npy file; expected an .npz archive with arrays "
            f"'{x_key}' and '{y_key}' (save it with np.savez)"
        )
    if not magic.startswith(b"PK"):
        raise ValueError(f"{path} is not a valid .npz file (expected a zip archive made by np.savez)")

    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # truncated or corrupt zip
        raise ValueError(f"{path} is not a valid .npz file ({error})") from None
    with archive:
        available = list(archive.files)
        arrays = {}
        for role, key in (("x", x_key), ("y", y_key), ("client", client_key)):
            if key is None:
                continue
            if key not in available:
                names = ", ".join(name[:40] for name in available[:10]) + (", …" if len(available) > 10 else "")
                raise DataError(f"{path} has no array '{key}' (arrays: {names or 'none'})", "missing_array",
                                key, available)
            try:
                arrays[role] = archive[key]
            except Exception as error:  # object arrays need pickle, which we refuse
                raise ValueError(
                    f"{path}: array '{key}' could not be read ({error}); store plain numeric "
                    f"or string arrays"
                ) from None

    x, y = arrays["x"], arrays["y"]
    if x.ndim == 0 or x.dtype.kind not in "biuf":
        raise ValueError(
            f"{path}: array '{x_key}' must be a numeric array with one row per example, "
            f"got dtype {x.dtype} and shape {x.shape}"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"{path}: array '{y_key}' must be 1-D (one label per example), got shape {y.shape}"
        )
    if len(y) != len(x):
        raise ValueError(
            f"{path}: arrays '{x_key}' and '{y_key}' have different numbers of examples "
            f"({len(x)} and {len(y)})"
        )
    if len(x) == 0:
        raise ValueError(f"{path}: array '{x_key}' has no examples")

    bad_rows = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1) if x.dtype.kind == "f" else None
    if bad_rows is not None and bad_rows.any():
        raise ValueError(
            f"{path}: array '{x_key}' contains NaN or infinite values "
            f"({int(bad_rows.sum())} examples, first at index {int(np.argmax(bad_rows))})"
        )

    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(np.nan_to_num(y)))
        if not whole.all():
            first = int(np.argmin(whole))
            raise ValueError(
                f"{path}: array '{y_key}' must hold integer class labels; "
                f"index {first} is {y[first]!r}"
            )
    elif y.dtype.kind not in "biu":
        raise ValueError(
            f"{path}: array '{y_key}' must hold integer class labels, got dtype {y.dtype}"
        )
    if (y < 0).any():
        first = int(np.argmax(y < 0))
        raise ValueError(
            f"{path}: array '{y_key}' must hold class labels >= 0; index {first} is {y[first]!r}"
        )
    if (y > 2**31 - 1).any():  # labels are int32 in TensorFlow's sparse losses (and cast to int64 here)
        first = int(np.argmax(y > 2**31 - 1))
        raise ValueError(
            f"{path}: array '{y_key}' must hold class labels at most 2147483647; index {first} is {y[first]!r}"
        )
    y = y.astype(np.int64)

    client_ids = None
    if client_key is not None:
        raw = arrays["client"]
        if raw.ndim != 1 or len(raw) != len(x):
            raise ValueError(
                f"{path}: array '{client_key}' must be 1-D with one client id per example "
                f"({len(x)}), got shape {raw.shape}"
            )
        client_ids = _encode_client_ids(raw, f"{path}: array '{client_key}'")
    with np.errstate(over="ignore"):  # features are float32: magnitudes above 3.4e38 become inf
        x32 = x.astype(np.float32)
    if x.dtype.kind == "f" and not np.isfinite(x32).all():  # finite in float64, inf in float32
        first = int(np.argmin(np.isfinite(x32.reshape(len(x32), -1)).all(axis=1)))
        raise ValueError(
            f"{path}: array '{x_key}' holds values beyond float32's range (magnitude above "
            f"3.4e38), first in example {first}; features are float32"
        )
    return x32, y, client_ids


def load_csv(path, label="label", client=None):
    """(x float32 [n, d], y int64 [n], client ids int64 [n] or None) from a CSV file with a header row:
    the label column, optionally a client column, and a numeric feature in every other column. Client
    ids that are not all integers (e.g. names) are numbered 0, 1, … in order of first appearance."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f)
        header = [name.strip() for name in next(row for row in rows if row)]
        label_at, client_at = header.index(label), header.index(client) if client is not None else None
        features = [i for i in range(len(header)) if i not in (label_at, client_at)]
        x, y, ids = array.array("d"), array.array("d"), []  # flat typed arrays: a few bytes per value
        for row in rows:
            if row and (len(row) > 1 or row[0].strip()):  # blank lines are skipped
                x.extend(float(row[i]) for i in features)
                y.append(float(row[label_at]))
                ids.append(row[client_at].strip() if client is not None else None)
    x, y = np.frombuffer(x, dtype=np.float64).reshape(len(y), -1).astype(np.float32), np.frombuffer(y)
    if not np.all(y == np.floor(y)):  # also NaN; check refuses these (E501)
        raise ValueError(f"{path}: the labels ({label}) must be whole numbers, the classes' indices")
    y = y.astype(np.int64)
    if client is None:
        return x, y, None
    try:
        return x, y, np.array([int(i) for i in ids], dtype=np.int64)
    except ValueError:  # not all integers
        numbers = {}
        return x, y, np.array([numbers.setdefault(i, len(numbers)) for i in ids], dtype=np.int64)


def checked_load_csv(
    path: str, label: str = "label", client: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """load_csv with every check: what `fedlang check` reads (tests hold the two equal on good files).

    Returns (x float32 [n, d], y int64 [n], client_ids int64 [n] or None). Client ids that
    are all integers are kept; otherwise (e.g. names) they are numbered 0, 1, ... in order of
    first appearance. Blank lines are ignored.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = None
        for row in reader:
            if row:
                header = [name.strip() for name in row]
                break
        if header is None:
            raise ValueError(f"{path} is empty; expected a header row naming the columns")

        # Messages describe the file, never echo it: a spec may name any readable file.
        first_seen = {}
        for i, name in enumerate(header):
            if name in first_seen:
                raise DataError(
                    f"{path} header repeats a column name (columns {first_seen[name] + 1} and {i + 1})",
                    "repeated_column", name, header,
                )
            first_seen[name] = i
        for role, name in (("label", label), ("client", client)):
            if name is not None and name not in header:
                close = [c for c in header if c.lower() == name.lower()]
                raise DataError(
                    f"column '{name}' not found in {path} header ({len(header)} column{'s' if len(header) != 1 else ''}"
                    + (f"; one is named '{close[0]}'" if close else "") + ")",
                    "missing_column", name, header,
                )
        if client is not None and client == label:
            raise ValueError(f"{path}: the label and client columns must differ ('{label}')")
        label_col = header.index(label)
        client_col = header.index(client) if client is not None else None
        feature_cols = [i for i in range(len(header)) if i not in (label_col, client_col)]
        if not feature_cols:
            raise ValueError(f"{path} has no feature columns (only the label and client columns)")

        # Flat typed arrays: a list of lists of floats took ~25 bytes per byte of CSV.
        features, labels, clients = array.array("d"), array.array("q"), []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            line = reader.line_num
            if len(row) != len(header):
                raise DataError(
                    f"{path} line {line}: expected {len(header)} columns, found {len(row)}", "row_length"
                )
            values = []
            for i in feature_cols:
                cell = row[i].strip()
                try:
                    value = float(cell)
                except ValueError:
                    raise DataError(
                        f"{path} line {line}, column {i + 1} ('{header[i][:40]}'): expected a number, "
                        f"found {_cell_kind(cell)}", "not_a_number", header[i], header,
                    ) from None
                if not math.isfinite(value):
                    raise ValueError(
                        f"{path} line {line}, column {i + 1} ('{header[i][:40]}'): expected a finite "
                        f"number, found {_cell_kind(cell)}"
                    )
                if abs(value) > 3.4028234663852886e38:  # features are float32: it would become inf
                    raise ValueError(
                        f"{path} line {line}, column {i + 1} ('{header[i][:40]}'): a number beyond "
                        f"float32's range (magnitude at most 3.4e38)"
                    )
                values.append(value)
            features.extend(values)

            cell = row[label_col].strip()
            try:
                value = float(cell)
            except ValueError:
                value = None
            if value is None or not math.isfinite(value) or value != int(value) or value < 0 \
                    or value > 2**31 - 1:  # labels are int32 in TensorFlow's sparse losses
                raise ValueError(
                    f"{path} line {line}, column '{label}': expected an integer class label "
                    f">= 0, found {_cell_kind(cell)}"
                )
            labels.append(int(value))

            if client_col is not None:
                cell = row[client_col].strip()
                if not cell:
                    raise ValueError(
                        f"{path} line {line}, column '{client}': expected a client id, "
                        f"found an empty cell"
                    )
                clients.append(cell)

    if not features:
        raise ValueError(f"{path} has a header but no data rows")
    x = np.frombuffer(features, dtype=np.float64).reshape(len(labels), -1).astype(np.float32)
    y = np.frombuffer(labels, dtype=np.int64).copy()
    client_ids = None
    if client_col is not None:
        try:
            as_ints = [int(c) for c in clients]
        except ValueError:
            as_ints = None
        if as_ints is not None:
            client_ids = np.asarray(as_ints, dtype=np.int64)
        else:
            client_ids = _encode_client_ids(np.asarray(clients), f"{path} column '{client}'")
    return x, y, client_ids


# ---------------------------------------------------------------------------------------------
# Splitting and partitioning
#
# Each split is an unchecked core, which emitted programs copy (`fedlang check` has proved their
# arguments), and a `checked_` wrapper that tests the arguments, raises a DataError saying what
# is wrong, and calls the core: check's split replay and library callers use the wrapper, so
# both make the same draws with the same code.
# ---------------------------------------------------------------------------------------------


def holdout_split(num_examples, fraction, rng):
    """Hold out round(fraction * num_examples) random examples: (train indices, test indices), sorted."""
    num_test = int(round(fraction * num_examples))
    order = rng.permutation(num_examples)
    return np.sort(order[num_test:]), np.sort(order[:num_test])


def checked_holdout_split(num_examples: int, fraction: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """holdout_split, after checking that both sets get examples."""
    where = "holdout_split"
    if isinstance(num_examples, (int, np.integer)) and not isinstance(num_examples, bool) and 0 <= num_examples < 2:
        raise DataError(
            f"holding out a test set needs at least 2 examples; the data has {num_examples}", "empty_split",
            hint="use a data file with more examples, or drop `test holdout`", where=where,
        )
    n = _check_int(num_examples, "num_examples", where, 2)
    _check_rng(rng, where)
    if not (isinstance(fraction, (int, float, np.number)) and 0 < fraction < 1):
        raise ValueError(f"{where}: fraction must be between 0 and 1 (exclusive), got {fraction!r}")
    num_test = int(round(fraction * n))
    if num_test == 0 or num_test == n:
        part = "test" if num_test == 0 else "training"
        raise DataError(
            f"holding out {fraction} of {n} examples leaves the {part} set empty", "empty_split",
            hint="hold out a fraction that leaves examples on both sides", where=where,
        )
    return holdout_split(n, fraction, rng)


def holdout_tails(counts, fraction: float) -> list:
    """Training examples per client when the last round(fraction · n) of each file are held out."""
    train = [n - int(round(fraction * n)) for n in counts]
    if min(train) < 1:  # checked in the program too: it counts the files again, as they are now
        empty = train.index(min(train))
        raise ValueError(f"holding out {fraction} of client {empty}'s {counts[empty]} examples leaves it none")
    if sum(train) == sum(counts):
        raise ValueError(f"holding out {fraction} of each file leaves the test set empty")
    return train


def partition_iid(num_examples, num_clients, rng):
    """Shuffle the examples and deal them to the clients (sizes differ by at most one): sorted indices per client."""
    return [np.sort(part).astype(np.int64) for part in np.array_split(rng.permutation(num_examples), num_clients)]


def checked_partition_iid(num_examples: int, num_clients: int, rng) -> list[np.ndarray]:
    """partition_iid, after checking that every client gets an example."""
    where = "partition_iid"
    n = _check_int(num_examples, "num_examples", where, 1)
    num_clients = _check_int(num_clients, "num_clients", where, 1)
    _check_rng(rng, where)
    if num_clients > n:
        raise DataError(f"cannot split {n} examples among {num_clients} clients", "too_few_examples",
                        hint="use fewer clients", where=where)
    return partition_iid(n, num_clients, rng)


def partition_dirichlet(labels, num_clients, alpha, rng, min_examples=1):
    """Label skew: each class is shared among the clients in Dirichlet(alpha) proportions (small alpha:
    few classes per client), redrawn until every client has min_examples. Sorted indices per client."""
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]  # shuffled once
    tries = max(10, min(1000, 20_000_000 // (len(by_class) * num_clients)))  # a hopeless split fails in seconds
    for _ in range(tries):
        proportions = [rng.dirichlet(np.full(num_clients, float(alpha))) for _ in by_class]
        cuts = [(np.cumsum(p)[:-1] * len(ix)).astype(np.int64) for p, ix in zip(proportions, by_class)]
        sizes = sum(np.diff(c, prepend=0, append=len(ix)) for c, ix in zip(cuts, by_class))
        if sizes.min() >= min_examples:  # count first: a rejected draw builds no index arrays
            shares = zip(*(np.split(ix, c) for ix, c in zip(by_class, cuts)))
            return [np.sort(np.concatenate(parts)).astype(np.int64) for parts in shares]
    raise ValueError(f"after {tries} draws some client still had fewer than {min_examples} examples")


def checked_partition_dirichlet(
    labels, num_clients: int, alpha: float, rng, min_examples: int = 1
) -> list[np.ndarray]:
    """partition_dirichlet, after checking its arguments; a split the bounded redraws cannot make
    is a DataError of kind "draws_exhausted"."""
    where = "partition_dirichlet"
    labels = _check_labels(labels, where)
    num_clients = _check_int(num_clients, "num_clients", where, 1)
    min_examples = _check_int(min_examples, "min_examples", where, 0)
    _check_rng(rng, where)
    if not (isinstance(alpha, (int, float, np.number)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"{where}: alpha must be a positive number, got {alpha!r}")
    n = len(labels)
    if num_clients > n:
        raise DataError(f"cannot split {n} examples among {num_clients} clients", "too_few_examples",
                        hint="use fewer clients", where=where)
    if num_clients * min_examples > n:
        raise DataError(
            f"{num_clients} clients with at least {min_examples} examples each need "
            f"{num_clients * min_examples} examples, but there are only {n}", "too_few_examples",
            hint="use fewer clients or a smaller min_examples", where=where,
        )
    try:
        return partition_dirichlet(labels, num_clients, alpha, rng, min_examples)
    except ValueError as exc:  # the arguments are good: the redraws ran out
        raise DataError(
            f"{exc} ({n} examples, {num_clients} clients, alpha={alpha})",
            "draws_exhausted", hint="use fewer clients, a larger alpha or a smaller min_examples", where=where,
        ) from None


def partition_shards(labels, num_clients, shards_per_client, rng):
    """McMahan et al.'s (2017) pathological non-IID split: the examples, sorted by label, are cut into
    num_clients * shards_per_client shards dealt at random, so each client sees few labels. Sorted
    indices per client."""
    shards = np.array_split(np.argsort(labels, kind="stable"), num_clients * shards_per_client)
    dealt = rng.permutation(num_clients * shards_per_client).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in mine])).astype(np.int64) for mine in dealt]


def checked_partition_shards(labels, num_clients: int, shards_per_client: int, rng) -> list[np.ndarray]:
    """partition_shards, after checking that every shard gets an example."""
    where = "partition_shards"
    labels = _check_labels(labels, where)
    num_clients = _check_int(num_clients, "num_clients", where, 1)
    shards_per_client = _check_int(shards_per_client, "shards_per_client", where, 1)
    _check_rng(rng, where)
    num_shards = num_clients * shards_per_client
    if len(labels) < num_shards:
        raise DataError(
            f"{num_clients} clients x {shards_per_client} shards need at least "
            f"{num_shards} examples, but there are only {len(labels)}", "too_few_examples",
            hint="use fewer clients or fewer shards per client", where=where,
        )
    return partition_shards(labels, num_clients, shards_per_client, rng)


def partition_natural(client_ids):
    """One client per distinct id (the data's own users), in sorted id order: sorted indices per client."""
    order = np.argsort(client_ids, kind="stable")  # stable: indices stay sorted within a client
    ids = client_ids[order]
    return [part.astype(np.int64) for part in np.split(order, np.flatnonzero(ids[1:] != ids[:-1]) + 1)]


def checked_partition_natural(client_ids) -> list[np.ndarray]:
    """partition_natural, after checking that there are ids."""
    client_ids = np.asarray(client_ids)
    if client_ids.ndim != 1 or len(client_ids) == 0:
        raise ValueError(
            f"partition_natural: client_ids must be a non-empty 1-D array, got shape "
            f"{client_ids.shape}"
        )
    return partition_natural(client_ids)


def sample_clients(rng, num_clients, clients_per_round):
    """The sorted indices of clients_per_round clients drawn uniformly without replacement."""
    return np.sort(rng.choice(num_clients, size=clients_per_round, replace=False)).astype(np.int64)


def checked_sample_clients(rng, num_clients: int, clients_per_round: int) -> np.ndarray:
    """sample_clients, after checking its arguments."""
    where = "sample_clients"
    _check_rng(rng, where)
    num_clients = _check_int(num_clients, "num_clients", where, 1)
    clients_per_round = _check_int(clients_per_round, "clients_per_round", where, 1)
    if clients_per_round > num_clients:
        raise ValueError(
            f"{where}: cannot pick {clients_per_round} clients per round from only "
            f"{num_clients} clients"
        )
    return sample_clients(rng, num_clients, clients_per_round)


def client_size_summary(partitions) -> dict:
    """Summarise how many examples each client holds: min, median, mean and max."""
    sizes = np.array([len(p) for p in partitions], dtype=np.int64)
    if sizes.size == 0:
        raise ValueError("client_size_summary: there are no clients")
    return {
        "min": int(sizes.min()),
        "median": float(np.median(sizes)),
        "mean": float(sizes.mean()),
        "max": int(sizes.max()),
    }


# ---------------------------------------------------------------------------------------------
# Feature scaling (fit on the training data only, then apply to every split)
# ---------------------------------------------------------------------------------------------


def fit_scaler(x_train, kind):
    """Per-feature (shift, scale) that map the training examples to [0, 1] ("minmax") or to mean 0
    and std 1 ("standard"); a constant feature gets scale 1."""
    x = np.asarray(x_train, dtype=np.float64)
    shift, scale = (x.min(axis=0), np.ptp(x, axis=0)) if kind == "minmax" else (x.mean(axis=0), x.std(axis=0))
    return shift, np.where(scale > 0, scale, 1.0)


def checked_fit_scaler(x_train, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """fit_scaler, after checking that the data are non-empty and finite and the kind is known."""
    x = np.asarray(x_train, dtype=np.float64)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError("fit_scaler: the training data is empty")
    if kind not in ("minmax", "standard"):
        raise ValueError(f"fit_scaler: unknown scaling '{kind}' (expected 'minmax' or 'standard')")
    shift, scale = fit_scaler(x, kind)
    if not (np.all(np.isfinite(shift)) and np.all(np.isfinite(scale))):
        raise ValueError("fit_scaler: the training data contains NaN or infinite values")
    return shift, scale


def apply_scaler(x, shift, scale):
    """(x - shift) / scale as float32, with shift and scale from fit_scaler."""
    return ((x - shift) / scale).astype(np.float32)


def checked_apply_scaler(x, shift, scale) -> np.ndarray:
    """apply_scaler, after checking that the examples have the shape the scaler was fitted on."""
    x = np.asarray(x)
    shift = np.asarray(shift)
    if x.shape[1:] != shift.shape:
        raise ValueError(
            f"apply_scaler: the scaler was fitted on examples of shape {shift.shape}, "
            f"but these examples have shape {x.shape[1:]}"
        )
    return apply_scaler(x, shift, scale)


# Helpers each function calls (directly), so the compiler can copy what is needed. Programs copy
# the unchecked cores, which call none; the checked_ wrappers are never copied.
REQUIRES: dict[str, tuple[str, ...]] = {
    "DataError": (),
    "_check_rng": (),
    "_check_int": (),
    "_cell_kind": (),
    "_check_labels": (),
    "_encode_client_ids": (),
    "synthetic_fedprox": (),
    "checked_synthetic_fedprox": ("_check_int", "synthetic_fedprox"),
    "markov_sequences": (),
    "checked_markov_sequences": ("_check_int", "markov_sequences"),
    "load_npz": (),
    "checked_load_npz": ("_encode_client_ids", "DataError"),
    "load_csv": (),
    "checked_load_csv": ("_encode_client_ids", "_cell_kind", "DataError"),
    "holdout_split": (),
    "checked_holdout_split": ("_check_int", "_check_rng", "DataError", "holdout_split"),
    "holdout_tails": (),
    "partition_iid": (),
    "checked_partition_iid": ("_check_int", "_check_rng", "DataError", "partition_iid"),
    "partition_dirichlet": (),
    "checked_partition_dirichlet": ("_check_labels", "_check_int", "_check_rng", "DataError", "partition_dirichlet"),
    "partition_shards": (),
    "checked_partition_shards": ("_check_labels", "_check_int", "_check_rng", "DataError", "partition_shards"),
    "partition_natural": (),
    "checked_partition_natural": ("partition_natural",),
    "sample_clients": (),
    "checked_sample_clients": ("_check_rng", "_check_int", "sample_clients"),
    "client_size_summary": (),
    "fit_scaler": (),
    "checked_fit_scaler": ("fit_scaler",),
    "apply_scaler": (),
    "checked_apply_scaler": ("apply_scaler",),
}
