"""Tests for fedlang/lib/emnist.py: TFF's real EMNIST loader on a tiny SQLite file in TFF's
format, and the offline error. No network is used (name resolution is stubbed)."""

import inspect
import lzma
import socket
import sqlite3
import urllib.request

import numpy as np
import pytest

pytestmark = pytest.mark.tff

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_federated")

from fedlang.lib import emnist  # noqa: E402

# Writers (TFF client ids) -> number of digit examples in train; each also has 1 test example.
WRITERS = {"f0002_11": 3, "f0000_14": 2, "f0001_41": 4}
TEST_ONLY_WRITER = "f9999_00"  # only in the test split (does not happen in the real data)


def pixels_for(marker):
    """A 28x28 image whose pixel [0, 0] encodes ``marker`` so examples can be identified."""
    img = np.full((28, 28), 1.0, np.float32)
    img[0, 0] = marker / 1000.0
    img[5:20, 10:14] = 0.0
    return img


def example_proto(img, label):
    features = {
        "pixels": tf.train.Feature(float_list=tf.train.FloatList(value=img.reshape(-1).tolist())),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def make_tff_emnist_sqlite(path):
    """Write a tiny emnist_all.sqlite in TFF's schema; return the expected examples per split
    as sets of (writer, label, marker)."""
    expected = {s: set() for s in ("digits_only_train", "digits_only_test", "all_train", "all_test")}
    rows = []
    marker = 0

    def add(split, writer, label):
        nonlocal marker
        marker += 1
        rows.append((split, writer, example_proto(pixels_for(marker), label)))
        expected[split].add((writer, label, marker))

    for w, (writer, n_train) in enumerate(WRITERS.items()):
        for i in range(n_train):
            digit = (w + i) % 10
            add("digits_only_train", writer, digit)
            add("all_train", writer, digit)
        add("digits_only_test", writer, 9 - w)
        add("all_test", writer, 9 - w)
        add("all_train", writer, 10 + w)  # an upper-case letter
        add("all_test", writer, 36 + w)  # a lower-case letter
    add("digits_only_test", TEST_ONLY_WRITER, 7)

    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE examples (split_name TEXT NOT NULL, client_id TEXT NOT NULL, "
        "serialized_example_proto BLOB NOT NULL);"
    )
    con.execute(
        "CREATE TABLE client_metadata (client_id TEXT NOT NULL, split_name TEXT NOT NULL, "
        "num_examples INTEGER NOT NULL);"
    )
    con.executemany(
        "INSERT INTO examples (split_name, client_id, serialized_example_proto) VALUES (?, ?, ?)",
        rows,
    )
    counts = {}
    for split, writer, _ in rows:
        counts[(writer, split)] = counts.get((writer, split), 0) + 1
    con.executemany(
        "INSERT INTO client_metadata (client_id, split_name, num_examples) VALUES (?, ?, ?)",
        [(w, s, n) for (w, s), n in counts.items()],
    )
    con.commit()
    con.close()
    return expected


@pytest.fixture
def cached(tmp_path):
    expected = make_tff_emnist_sqlite(str(tmp_path / "emnist_all.sqlite"))
    return str(tmp_path), expected


def as_set(split, numbers):
    """(writer, label, marker) for each example of a loaded (x, y, client_ids) triple."""
    names = {n: w for w, n in numbers.items()}
    x, y, c = split
    markers = np.round(x[:, 0, 0] * 1000).astype(int)
    return {(names[int(ci)], int(yi), int(m)) for ci, yi, m in zip(c, y, markers)}


SORTED_WRITERS = sorted(WRITERS)  # TFF sorts client ids; they are numbered in that order
NUMBERS = {w: i for i, w in enumerate(SORTED_WRITERS)} | {TEST_ONLY_WRITER: len(WRITERS)}


def check_triple(split, n):
    x, y, c = split
    assert x.dtype == np.float32 and x.shape == (n, 28, 28)
    assert y.dtype == np.int64 and y.shape == (n,)
    assert c.dtype == np.int64 and c.shape == (n,)
    assert np.all(np.diff(c) >= 0)  # grouped by client
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_loads_cached_digits(cached):
    cache_dir, expected = cached
    train, test = emnist.load_emnist(only_digits=True, cache_dir=cache_dir)
    check_triple(train, len(expected["digits_only_train"]))
    check_triple(test, len(expected["digits_only_test"]))
    assert as_set(train, NUMBERS) == expected["digits_only_train"]
    assert as_set(test, NUMBERS) == expected["digits_only_test"]
    assert set(np.unique(train[2])) == {0, 1, 2}
    assert set(np.unique(test[2])) == {0, 1, 2, 3}  # the test-only writer gets the next number
    assert train[1].max() <= 9
    # Pixel content survives parsing exactly.
    assert np.all(train[0][:, 5:20, 10:14] == 0.0) and np.all(train[0][:, 25, :] == 1.0)


def test_loads_cached_all_characters(cached):
    cache_dir, expected = cached
    train, test = emnist.load_emnist(only_digits=False, cache_dir=cache_dir)
    check_triple(train, len(expected["all_train"]))
    numbers = {w: i for i, w in enumerate(SORTED_WRITERS)}
    assert as_set(train, numbers) == expected["all_train"]
    assert as_set(test, numbers) == expected["all_test"]
    assert train[1].max() >= 10 and test[1].max() >= 36


def test_copied_verbatim_with_requires(cached):
    """The emitted program copies load_emnist and its helpers; that copy must work alone."""
    names, todo = [], ["load_emnist"]
    while todo:
        name = todo.pop()
        if name not in names:
            names.append(name)
            todo.extend(emnist.REQUIRES[name])
    source = "import os\n\nimport numpy as np\n\n" + "\n\n".join(
        inspect.getsource(getattr(emnist, n)) for n in names
    )
    namespace = {}
    exec(compile(source, "<emitted>", "exec"), namespace)
    cache_dir, expected = cached
    train, _ = namespace["load_emnist"](cache_dir=cache_dir)
    assert len(train[1]) == len(expected["digits_only_train"])


@pytest.fixture
def no_dns(monkeypatch):
    """Make name resolution fail the way it does on an offline machine (hermetic and fast)."""

    def offline(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)


def test_offline_without_cache_gives_clear_error(tmp_path, no_dns):
    cache_dir = tmp_path / "cache"
    expected_path = str(cache_dir / "emnist_all.sqlite")
    with pytest.raises(RuntimeError) as info:
        emnist.load_emnist(cache_dir=str(cache_dir))
    message = str(info.value)
    assert "this machine appears to be offline" in message
    assert f"TFF looked for the file {expected_path}" in message
    assert f"put the resulting emnist_all.sqlite at {expected_path}" in message
    assert "https://storage.googleapis.com/tff-datasets-public/emnist_all.sqlite.lzma" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no socket traceback
    assert not (cache_dir / "emnist_all.sqlite").exists()
    assert socket.getdefaulttimeout() is None  # restored


def test_default_cache_dir_is_home_dot_tff(tmp_path, monkeypatch, no_dns):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(RuntimeError) as info:
        emnist.load_emnist()
    path = str(tmp_path / ".tff" / "emnist_all.sqlite")
    assert f"TFF looked for the file {path}" in str(info.value)
    assert "or pass cache_dir=" in str(info.value)


class _DroppingStream:
    """A download that delivers part of a valid .lzma file and then loses the connection."""

    def __init__(self):
        self.chunks = [lzma.compress(b"x" * 200_000, format=lzma.FORMAT_ALONE)[:5000]]
        self.headers = {"content-length": "999999"}

    def read(self, size):
        if self.chunks:
            return self.chunks.pop()
        raise ConnectionResetError(104, "Connection reset by peer")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_interrupted_download_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _DroppingStream())
    with pytest.raises(RuntimeError, match="Connection reset by peer"):
        emnist.load_emnist(cache_dir=str(tmp_path))
    # TFF had written a partial emnist_all.sqlite; the loader removed it.
    assert not (tmp_path / "emnist_all.sqlite").exists()


def test_damaged_cached_file(tmp_path):
    (tmp_path / "emnist_all.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RuntimeError, match="could not be read .* delete it and run again"):
        emnist.load_emnist(cache_dir=str(tmp_path))
    assert (tmp_path / "emnist_all.sqlite").exists()  # the user's file is not deleted
