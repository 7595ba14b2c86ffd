"""`source files(…)` at check time: files found, examples counted and facts read without TensorFlow
(TFRecord records from their length prefixes), one client per file, `natural(first = N)`."""

from __future__ import annotations

import numpy as np
import pytest

from fedlang.constructs.sources import FILE_FORMATS
from fedlang.diagnostics import Source, SpecError
from fedlang.lib import files as fileslib
from fedlang.pipeline import compile_source

from ..files_support import example_bytes, write_clients, write_tfrecord

SIZES = [30, 45, 12, 60]

SPEC = """\
seed 1
model m {{
  input [4]
  dense 3 softmax
  loss sparse_categorical_crossentropy
}}
data {{
  source files("{pattern}")
  {extra}
}}
train fedavg {{ rounds 1 }}
"""


def _compile(tmp_path, pattern, extra=""):
    return compile_source(Source("s.fed", SPEC.format(pattern=pattern, extra=extra)), tmp_path)


@pytest.mark.parametrize("fmt", ["csv", "npz", "tfrecord"])
def test_facts_of_each_format_without_tensorflow(fmt, tmp_path):
    written = write_clients(tmp_path / "silos", fmt, SIZES)
    paths = fileslib.client_files(str(tmp_path / "silos" / f"*.{fmt}"))
    assert len(paths) == 4
    for path, (x, y) in zip(paths, written):
        count, shape, stored, labels, tokens = fileslib.client_file_facts(path)
        assert (count, shape, stored, tokens) == (len(y), (4,), "float", None)
        assert labels.tolist() == y.tolist()
        count, options, _, _ = FILE_FORMATS[f".{fmt}"]  # the counter a program of this format copies
        assert getattr(fileslib, count)(path, *(["y"] if options else [])) == len(y)


def test_tfrecord_count_reads_only_the_length_prefixes(tmp_path):
    path = tmp_path / "c.tfrecord"
    write_tfrecord(path, [example_bytes({"x": np.full(100, i, np.float32), "y": [1]}) for i in range(9)])
    assert fileslib.count_tfrecord_records(str(path)) == 9
    whole = path.read_bytes()
    path.write_bytes(whole[:-3])  # a truncated last record
    with pytest.raises(ValueError, match="truncated TFRecord file \\(record 9 is cut short\\)"):
        fileslib.count_tfrecord_records(str(path))
    path.write_bytes(whole + b"\x05\x00")  # a partial length prefix after the last record
    with pytest.raises(ValueError, match="truncated TFRecord file \\(record 10 is cut short\\)"):
        fileslib.count_tfrecord_records(str(path))
    path.write_bytes(b"")
    assert fileslib.count_tfrecord_records(str(path)) == 0


def test_integer_features_are_token_ids(tmp_path):
    write_clients(tmp_path / "t", "tfrecord", [5, 7], features=3, integer=True)
    _, shape, stored, _, tokens = fileslib.client_file_facts(str(tmp_path / "t" / "client_01.tfrecord"))
    assert (shape, stored) == ((3,), "int64") and 1 <= tokens <= 10


def test_check_knows_each_clients_size(tmp_path):
    write_clients(tmp_path / "silos", "tfrecord", SIZES)
    compiled = _compile(tmp_path, "silos/*.tfrecord", "test holdout(0.2)")
    assert compiled.checked.data.num_clients == 4
    assert compiled.checked.data.client_sizes == tuple(n - round(0.2 * n) for n in SIZES)
    first = _compile(tmp_path, "silos/*.tfrecord", "partition natural(first = 2)")
    assert first.checked.data.num_clients == 2 and first.checked.data.client_sizes == (30, 45)
    program = first.program()
    assert "files = files[:2]" in program and "def read_tfrecord_file(" in program
    assert "tf.data.TFRecordDataset(path)" in program and "load_data" in program


@pytest.mark.parametrize("fmt", ["csv", "npz", "tfrecord"])
def test_a_program_copies_only_its_formats_counter_and_reader(tmp_path, fmt):
    """Each format has its counter (fedlang/lib/files.py) and tf.data reader (streams.py): the
    program of a files(*.csv) spec holds no TFRecord or npz code."""
    write_clients(tmp_path / "silos", fmt, SIZES)
    program = _compile(tmp_path, f"silos/*.{fmt}", "").program()
    counters = {"csv": "count_csv_rows", "npz": "count_npz_labels", "tfrecord": "count_tfrecord_records"}
    for other, counter in counters.items():
        assert (f"def {counter}(" in program) == (other == fmt)
        assert (f"def read_{other}_file(" in program) == (other == fmt)
    assert "def count_examples(" not in program and "endswith(" not in program


def test_a_holdout_that_empties_a_client_is_an_error(tmp_path):
    write_clients(tmp_path / "silos", "csv", [1, 10])
    source = Source("s.fed", SPEC.format(pattern="silos/*.csv", extra="test holdout(0.9)"))
    with pytest.raises(SpecError) as error:
        compile_source(source, tmp_path)
    assert "E507" in str(error.value) and "client 0" in str(error.value)


def test_natural_first_keeps_the_first_clients_of_an_array_source(tmp_path):
    text = SPEC.format(pattern="x", extra="").replace('source files("x")', "source markov(clients = 10, length = 30)")
    text = text.replace("input [4]", "input [8]\n  embedding 20 4\n  flatten").replace("dense 3", "dense 20")
    text = text.replace("  \n}", "  partition natural(first = 4)\n}")
    compiled = compile_source(Source("s.fed", text), tmp_path)
    assert compiled.checked.data.num_clients == 4 and compiled.checked.data.client_sizes == (22,) * 4
    assert "parts = partition_natural(client_ids)[:4]" in compiled.program()
