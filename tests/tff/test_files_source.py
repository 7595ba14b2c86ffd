"""`source files(…)`: one client per file, counted without TensorFlow at check time, streamed with
tf.data at run time — on small csv, npz and TFRecord files written here."""

from __future__ import annotations

import numpy as np
import pytest

from fedlang.lib import files as fileslib

from ..files_support import example_bytes, write_clients, write_tfrecord
from .support import compile_text, load_program

pytestmark = pytest.mark.tff

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_federated")

SIZES = [30, 45, 12, 60]

SPEC = """\
seed 1
model m {{
  input [4]
  dense 8 relu
  dense 3 softmax
  loss sparse_categorical_crossentropy
  metrics [accuracy]
}}
data silos {{
  source files("{pattern}")
  partition natural(first = 3)
  test holdout(0.2)
}}
train fedavg {{ rounds 1 }}
evaluate {{ every 1 }}
"""


def test_tensorflow_reads_our_tfrecords_and_we_read_its(tmp_path):
    ours = tmp_path / "ours.tfrecord"
    write_tfrecord(ours, [example_bytes({"x": np.arange(3, dtype=np.float32) + i, "y": [i]}) for i in range(7)])
    records = list(tf.data.TFRecordDataset(str(ours)))  # TensorFlow checks the CRCs
    assert len(records) == 7 == fileslib.count_tfrecord_records(str(ours))

    theirs = tmp_path / "theirs.tfrecord"
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for i in range(5):
            example = tf.train.Example(features=tf.train.Features(feature={
                "x": tf.train.Feature(int64_list=tf.train.Int64List(value=[i, -i, 2**40])),
                "f": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5 * i, -1.25])),
                "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}))
            writer.write(example.SerializeToString())
    assert fileslib.count_tfrecord_records(str(theirs)) == 5
    for i, record in enumerate(fileslib.tfrecord_records(str(theirs))):
        parsed = fileslib.parse_example(record)
        assert parsed["x"][0] == "int64" and parsed["x"][1].tolist() == [i, -i, 2**40]
        assert parsed["f"][0] == "float" and parsed["f"][1].tolist() == [0.5 * i, -1.25]
        assert parsed["y"][1].tolist() == [i % 2]


@pytest.mark.parametrize("fmt", ["csv", "npz", "tfrecord"])
def test_files_source_streams_each_clients_file(fmt, tmp_path, tff_worker):
    written = write_clients(tmp_path / "silos", fmt, SIZES)
    compiled = compile_text(SPEC.format(pattern=f"silos/*.{fmt}"), base_dir=tmp_path)
    train_counts = [n - round(0.2 * n) for n in SIZES[:3]]
    assert compiled.checked.data.client_sizes == tuple(train_counts)  # known at check time

    ns = load_program(compiled)
    clients, test = ns["load_data"]()
    assert [stop - start for _, start, stop in clients] == train_counts
    for (path, start, stop), (x, y) in zip(clients, written):
        xs, ys = zip(*ns["file_dataset"](path, start, stop).as_numpy_iterator())
        np.testing.assert_allclose(np.stack(xs), x[:stop], rtol=1e-6)
        assert list(ys) == y[:stop].tolist()
    held_out = sum(int(batch[1].shape[0]) for batch in ns["test_dataset"](test))
    assert held_out == sum(SIZES[:3]) - sum(train_counts)

    rows = []
    ns["train"](1, on_round=rows.append)
    assert np.isfinite(rows[0]["train_loss"]) and 0 <= rows[0]["eval_accuracy"] <= 1


def test_integer_tfrecord_features_feed_an_embedding(tmp_path, tff_worker):
    write_clients(tmp_path / "text", "tfrecord", [20, 25], features=6, classes=10, integer=True)
    spec = """\
seed 2
model m {
  input [6]
  embedding 10 4
  lstm 8
  dense 10 softmax
  loss sparse_categorical_crossentropy
}
data { source files("text/*.tfrecord") }
train fedavg { rounds 1 }
"""
    compiled = compile_text(spec, base_dir=tmp_path)
    assert compiled.checked.data.facts.tokens == 10 and compiled.checked.data.facts.stored == "int64"
    ns = load_program(compiled)
    rows = []
    ns["train"](1, on_round=rows.append)
    assert np.isfinite(rows[0]["train_loss"])
