"""Streaming one client's file with tf.data, for the `files(…)` source (copied into programs).

Unlike the array sources, a client's examples are not loaded with the others: each file is read
by tf.data when its client trains (TFRecord and CSV are read record by record; an npz archive,
which cannot be streamed, is loaded when its client is sampled). fedlang/lib/files.py describes
the formats; its NumPy functions count the examples without TensorFlow.
"""

import csv

import numpy as np
import tensorflow as tf


def read_tfrecord_file(path, x_key, y_key, stored, shape, dtype):
    """A TFRecord file of tf.train.Example as a tf.data.Dataset of (x, y): x of `shape` and `dtype`
    (stored as "float" or "int64" lists; fedlang check reads which), y int64."""
    spec = {x_key: tf.io.FixedLenFeature([int(np.prod(shape))], tf.float32 if stored == "float" else tf.int64),
            y_key: tf.io.FixedLenFeature([], tf.int64)}

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        return tf.reshape(tf.cast(example[x_key], dtype), shape), example[y_key]

    return tf.data.TFRecordDataset(path).map(parse)


def read_csv_file(path, y_key, shape, dtype):
    """A CSV file with a header row as a tf.data.Dataset of (x, y): every column but `y_key` is a
    feature (x of `shape` and `dtype`), y int64."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = [name.strip() for name in next(csv.reader(f))]
    label = header.index(y_key)
    columns = [i for i in range(len(header)) if i != label]
    rows = tf.data.experimental.CsvDataset(path, [tf.float64] * len(header), header=True)

    def split(*row):
        x = tf.stack([row[i] for i in columns])
        return tf.reshape(tf.cast(x, dtype), shape), tf.cast(row[label], tf.int64)

    return rows.map(split)


def read_npz_file(path, x_key, y_key, shape, dtype):
    """An npz archive as a tf.data.Dataset of (x, y); it cannot be streamed, so it is loaded when its
    client is sampled."""
    with np.load(path, allow_pickle=False) as archive:
        x = archive[x_key].astype(dtype.as_numpy_dtype).reshape([-1, *shape])
        y = archive[y_key].astype(np.int64).reshape(-1)
    return tf.data.Dataset.from_tensor_slices((x, y))


REQUIRES = {"read_tfrecord_file": (), "read_csv_file": (), "read_npz_file": ()}
