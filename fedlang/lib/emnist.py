"""Federated EMNIST as numpy arrays, through TensorFlow Federated's own loader.

Like fedlang/lib/data.py, the functions here are copied verbatim into generated programs;
TensorFlow and TFF are imported inside the functions. ``REQUIRES`` at the bottom maps each
function to the helpers of this module it calls.
"""

import os

import numpy as np


def _emnist_split_to_numpy(client_data, client_numbers):
    """Read every example of a TFF EMNIST ClientData into numpy arrays.

    ``client_numbers`` maps TFF's string client ids to ints; ids missing from it are added
    with the next free numbers. Returns (x float32 [n, 28, 28], y int64 [n], client_ids int64 [n]).
    """
    import tensorflow as tf

    ids = list(client_data.client_ids)
    for client_id in ids:
        client_numbers.setdefault(client_id, len(client_numbers))
    if not ids:
        return (np.zeros((0, 28, 28), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))

    def examples_of(client_id, number):
        dataset = client_data.serializable_dataset_fn(client_id)
        return dataset.map(lambda e: (e["pixels"], e["label"], number))

    numbers = [client_numbers[client_id] for client_id in ids]
    dataset = (
        tf.data.Dataset.from_tensor_slices((ids, tf.constant(numbers, tf.int64)))
        .flat_map(examples_of)
        .batch(8192)
    )
    xs, ys, cs = [], [], []
    for x, y, c in dataset.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
        cs.append(c)
    return (
        np.concatenate(xs).astype(np.float32),
        np.concatenate(ys).astype(np.int64),
        np.concatenate(cs).astype(np.int64),
    )


def load_emnist(only_digits: bool = True, cache_dir: str | None = None):
    """Load Federated EMNIST (handwriting grouped by writer, from LEAF) as numpy arrays.

    Uses tff.simulation.datasets.emnist.load_data, which reads the SQLite file
    ``emnist_all.sqlite`` from ``cache_dir`` (default ``~/.tff``) and downloads it
    (emnist_all.sqlite.lzma, decompressed on the fly) if it is not there.

    Returns ``((x_train, y_train, client_ids_train), (x_test, y_test, client_ids_test))`` where
      - x is float32 [n, 28, 28], pixels in [0, 1] with 1.0 = background and 0.0 = ink;
      - y is int64 [n]: 0-9 are digits; with only_digits=False, 10-35 are 'A'-'Z' and
        36-61 are 'a'-'z';
      - client_ids is int64 [n], the writer of each example. Writers are numbered 0, 1, ...
        in TFF's (sorted) order of training clients, and the test split uses the same numbers,
        since every writer has examples in both splits.

    Raises RuntimeError with instructions if the file is not cached and cannot be downloaded
    (e.g. the machine is offline), or if the cached file is damaged.
    """
    import socket

    import tensorflow_federated as tff

    url = "https://storage.googleapis.com/tff-datasets-public/emnist_all.sqlite.lzma"
    folder = cache_dir if cache_dir is not None else os.path.join(os.path.expanduser("~"), ".tff")
    db_path = os.path.abspath(os.path.join(folder, "emnist_all.sqlite"))
    was_cached = os.path.exists(db_path)

    # urllib waits forever on a silent network unless a default socket timeout is set.
    old_timeout = socket.getdefaulttimeout()
    if old_timeout is None:
        socket.setdefaulttimeout(60)
    try:
        train, test = tff.simulation.datasets.emnist.load_data(
            only_digits=only_digits, cache_dir=cache_dir
        )
    except KeyboardInterrupt:
        if not was_cached and os.path.exists(db_path):
            os.remove(db_path)  # do not leave a partial download behind
        raise
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        if was_cached:
            raise RuntimeError(
                f"The cached EMNIST file {db_path} could not be read ({reason}). It may be an "
                f"incomplete download: delete it and run again, or replace it with a good copy."
            ) from None
        # TFF writes the download straight to db_path; a partial file would later pass for
        # the data set, so remove it.
        if os.path.exists(db_path):
            os.remove(db_path)
        offline = isinstance(error, OSError)  # URLError, timeouts, refused/reset connections
        raise RuntimeError(
            f"Federated EMNIST is not cached and could not be downloaded"
            f"{' (this machine appears to be offline)' if offline else ''}: {reason}.\n"
            f"TFF looked for the file {db_path}.\n"
            f"To use EMNIST without network access, download {url} on a machine that has "
            f"network access, decompress it (xz -d emnist_all.sqlite.lzma) and put the "
            f"resulting emnist_all.sqlite at {db_path}"
            f"{'' if cache_dir is not None else ' (or pass cache_dir=<folder containing it>)'}."
        ) from None
    finally:
        socket.setdefaulttimeout(old_timeout)

    try:
        client_numbers = {}
        train_arrays = _emnist_split_to_numpy(train, client_numbers)
        test_arrays = _emnist_split_to_numpy(test, client_numbers)
    except Exception as error:
        raise RuntimeError(
            f"Could not read the EMNIST examples from {db_path} ({type(error).__name__}: "
            f"{error}). The file may be damaged or not in TFF's EMNIST format."
        ) from None
    return train_arrays, test_arrays


# Helpers each function calls (directly), so the compiler can copy what is needed.
REQUIRES: dict[str, tuple[str, ...]] = {
    "_emnist_split_to_numpy": (),
    "load_emnist": ("_emnist_split_to_numpy",),
}
