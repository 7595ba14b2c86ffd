"""Federated EMNIST as numpy arrays, through TensorFlow Federated's own loader.

Like fedlang/lib/data.py, the functions here are copied verbatim into generated programs;
TensorFlow and TFF are imported inside the functions. ``REQUIRES`` at the bottom maps each
function to the helpers of this module it calls.
"""

import os

import numpy as np


def _emnist_split_to_numpy(client_data, client_numbers):
    """Every example of a TFF EMNIST ClientData as numpy arrays (x float32 [n, 28, 28], y int64 [n],
    client ids int64 [n]); `client_numbers` maps TFF's string client ids to ints, numbering new ones."""
    import tensorflow as tf

    ids = list(client_data.client_ids)
    numbers = [client_numbers.setdefault(client_id, len(client_numbers)) for client_id in ids]
    if not ids:
        return np.zeros((0, 28, 28), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)

    def examples_of(client_id, number):
        return client_data.serializable_dataset_fn(client_id).map(lambda e: (e["pixels"], e["label"], number))

    dataset = tf.data.Dataset.from_tensor_slices((ids, tf.constant(numbers, tf.int64))).flat_map(examples_of)
    x, y, c = zip(*dataset.batch(8192).as_numpy_iterator())
    return np.concatenate(x).astype(np.float32), np.concatenate(y).astype(np.int64), np.concatenate(c).astype(np.int64)


def load_emnist(only_digits=True, cache_dir=None):
    """Federated EMNIST (handwriting grouped by writer, from LEAF) through TFF's loader, as numpy:
    ((x, y, client ids) of the training split, (x, y, client ids) of the test split).

    x is float32 [n, 28, 28] in [0, 1] (1.0 background, 0.0 ink); y is int64: digits 0-9 and, with
    only_digits=False, 'A'-'Z' 10-35 and 'a'-'z' 36-61; writers are numbered 0, 1, … in TFF's sorted
    order of training clients, alike in both splits. TFF reads emnist_all.sqlite from cache_dir
    (default ~/.tff) and downloads it when it is not there; a RuntimeError says what to do when that
    fails (e.g. offline) or the cached file is damaged.
    """
    import socket

    import tensorflow_federated as tff

    url = "https://storage.googleapis.com/tff-datasets-public/emnist_all.sqlite.lzma"
    folder = cache_dir if cache_dir is not None else os.path.join(os.path.expanduser("~"), ".tff")
    db_path = os.path.abspath(os.path.join(folder, "emnist_all.sqlite"))
    was_cached = os.path.exists(db_path)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60 if old_timeout is None else old_timeout)  # else urllib waits forever when silent
    try:
        train, test = tff.simulation.datasets.emnist.load_data(only_digits=only_digits, cache_dir=cache_dir)
    except BaseException as error:
        if not was_cached and os.path.exists(db_path):
            os.remove(db_path)  # TFF downloads straight to db_path: a partial file would pass for the data set
        if not isinstance(error, Exception):  # Ctrl-C
            raise
        reason = f"{type(error).__name__}: {error}"
        if was_cached:
            raise RuntimeError(f"The cached EMNIST file {db_path} could not be read ({reason}). It may be an "
                               f"incomplete download: delete it and run again, or replace it with a good copy.") from None
        raise RuntimeError(
            f"Federated EMNIST is not cached and could not be downloaded"
            f"{' (this machine appears to be offline)' if isinstance(error, OSError) else ''}: {reason}.\n"
            f"TFF looked for the file {db_path}.\n"
            f"To use EMNIST without network access, download {url} on a machine that has network access, "
            f"decompress it (xz -d emnist_all.sqlite.lzma) and put the resulting emnist_all.sqlite at {db_path}"
            f"{'' if cache_dir is not None else ' (or pass cache_dir=<folder containing it>)'}.") from None
    finally:
        socket.setdefaulttimeout(old_timeout)
    try:
        client_numbers = {}
        return _emnist_split_to_numpy(train, client_numbers), _emnist_split_to_numpy(test, client_numbers)
    except Exception as error:
        raise RuntimeError(f"Could not read the EMNIST examples from {db_path} ({type(error).__name__}: {error}). "
                           f"The file may be damaged or not in TFF's EMNIST format.") from None


# Helpers each function calls (directly), so the compiler can copy what is needed.
REQUIRES: dict[str, tuple[str, ...]] = {
    "_emnist_split_to_numpy": (),
    "load_emnist": ("_emnist_split_to_numpy",),
}
