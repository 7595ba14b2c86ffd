"""One client per file: find the files, count their examples and read their facts — NumPy only.

`fedlang check` calls these to know every client's size without TensorFlow, and the emitted
program copies them to recount the files it streams (the streaming itself, with tf.data, is in
fedlang/lib/streams.py). Formats, by extension:

- ``.tfrecord``: records of ``tf.train.Example`` with a float (or int64) list feature ``x`` —
  one example's features, flattened — and an int64 feature ``y``, the label (both names can be
  changed). Records are counted from their length prefixes (8-byte little-endian length, 4-byte
  CRC, data, 4-byte CRC) without reading the data; facts come from a small protobuf reader.
- ``.csv``: a header row, a label column ``y`` and numeric feature columns, no blank lines.
- ``.npz``: arrays ``x`` (one row per example) and ``y`` (labels), as written by ``np.savez``.

Errors are ``ValueError`` (``FileNotFoundError`` when nothing matches) naming the file.
"""

import csv
import glob
import os
import struct
import zipfile

import numpy as np


def client_files(pattern: str) -> list:
    """The files matching a glob pattern, sorted by name: one client each."""
    paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    if not paths:  # a program may run where its files are not
        raise FileNotFoundError(f"{pattern}: no file matches")
    return paths


def checked_client_files(pattern: str) -> list:
    """client_files, after checking that the files are all .csv, all .npz or all .tfrecord."""
    paths = client_files(pattern)
    formats = sorted({os.path.splitext(p)[1] for p in paths})
    if len(formats) > 1 or formats[0] not in (".csv", ".npz", ".tfrecord"):
        raise ValueError(f"{pattern}: the files must all be .csv, all .npz or all .tfrecord; found "
                         f"{', '.join(f or '(no extension)' for f in formats)}")
    return paths


def count_tfrecord_records(path: str) -> int:
    """Records in a TFRecord file, counted from their length prefixes (the data is skipped)."""
    size, count, offset = os.path.getsize(path), 0, 0
    with open(path, "rb") as f:
        while offset < size:
            head = f.read(8)  # a record: its length (8 bytes), a CRC (4), the data, a CRC (4)
            offset += 16 + (struct.unpack("<Q", head)[0] if len(head) == 8 else size)
            if offset > size:
                raise ValueError(f"{path}: truncated TFRecord file (record {count + 1} is cut short)")
            f.seek(offset)
            count += 1
    return count


def tfrecord_records(path: str):
    """Yield the data of each record of a TFRecord file (CRCs are not checked here)."""
    with open(path, "rb") as f:
        while True:
            head = f.read(8)
            if not head:
                return
            if len(head) < 8:
                raise ValueError(f"{path}: truncated TFRecord file")
            (length,) = struct.unpack("<Q", head)
            f.read(4)
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                raise ValueError(f"{path}: truncated TFRecord file")
            yield data


def _varint(buf, i):
    result = shift = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7


def _proto_fields(buf):
    """(field number, wire type, value) of a protobuf message; length-delimited values as bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, wire, value


def parse_example(record: bytes) -> dict:
    """A serialized tf.train.Example → {feature name: ("float" | "int64" | "bytes", values)}."""
    features = {}
    for field, _, message in _proto_fields(record):
        if field != 1:
            continue
        for entry_field, _, entry in _proto_fields(message):  # Features: map<string, Feature>
            if entry_field != 1:
                continue
            name, feature = None, b""
            for part, _, value in _proto_fields(entry):
                if part == 1:
                    name = bytes(value).decode("utf-8")
                elif part == 2:
                    feature = value
            features[name] = _feature_values(feature)
    return features


def _feature_values(feature):
    for kind, _, values in _proto_fields(feature):
        if kind == 2:  # FloatList: packed little-endian float32 (or one per field)
            return "float", np.concatenate([np.frombuffer(bytes(v), "<f4") for _, _, v in _proto_fields(values)]
                                           or [np.zeros(0, "<f4")]).astype(np.float32)
        if kind == 3:  # Int64List: packed varints (two's complement for negatives)
            out = []
            for _, wire, v in _proto_fields(values):
                if wire == 0:
                    out.append(v)
                    continue
                j = 0
                while j < len(v):
                    number, j = _varint(v, j)
                    out.append(number)
            return "int64", np.array(out, dtype=np.uint64).astype(np.int64)
        if kind == 1:
            return "bytes", [bytes(v) for _, _, v in _proto_fields(values)]
    return "float", np.zeros(0, np.float32)


def _tfrecord_facts(path, x_key, y_key):
    labels, shape, kind, low, top = [], None, None, 0, 0
    for n, record in enumerate(tfrecord_records(path)):
        example = parse_example(record)
        for key in (x_key, y_key):
            if key not in example:
                raise ValueError(f"{path}: record {n + 1} has no feature '{key}' "
                                 f"(features: {', '.join(sorted(example)) or 'none'})")
        x_kind, x = example[x_key]
        y_kind, y = example[y_key]
        if x_kind == "bytes" or y_kind != "int64" or len(y) != 1:
            raise ValueError(f"{path}: record {n + 1}: expected a float or int64 list '{x_key}' and one "
                             f"int64 '{y_key}'; found {x_kind} '{x_key}' and {len(y)} {y_kind} '{y_key}'")
        if shape is None:
            shape, kind = (len(x),), x_kind
        elif (len(x),) != shape or x_kind != kind:
            raise ValueError(f"{path}: record {n + 1} has {len(x)} {x_kind} values in '{x_key}'; "
                             f"record 1 has {shape[0]} {kind}")
        labels.append(int(y[0]))
        if kind == "int64" and len(x):
            low, top = min(low, int(x.min())), max(top, int(x.max()) + 1)
    if shape is None:
        raise ValueError(f"{path}: the file has no records")
    return len(labels), shape, kind, np.asarray(labels, dtype=np.int64), (top if kind == "int64" and low >= 0 else None)


def _csv_facts(path, y_key):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path} is empty; expected a header row naming the columns")
    header = [name.strip() for name in rows[0]]
    if y_key not in header:
        raise ValueError(f"column '{y_key}' not found in {path} header (columns: {', '.join(header)})")
    label = header.index(y_key)
    features, labels = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path} line {line}: expected {len(header)} columns, found {len(row)}"
                             + (" (a blank line)" if not row else ""))
        try:
            values = [float(cell) for cell in row]
        except ValueError:
            raise ValueError(f"{path} line {line}: every cell must be a number") from None
        if not all(abs(v) <= 3.4e38 for v in values):  # also false for NaN; features are float32
            raise ValueError(f"{path} line {line}: every cell must be a finite number within float32's range")
        labels.append(values.pop(label))
        features.append(values)
    if not labels:
        raise ValueError(f"{path} has a header but no data rows")
    y = np.asarray(labels)
    if not np.all(y == np.round(y)) or y.min() < 0 or y.max() > 2**31 - 1:
        raise ValueError(f"{path}: column '{y_key}' must hold integer class labels in [0, 2147483647]")
    x = np.asarray(features, dtype=np.float64)
    whole = bool(np.all(x == np.round(x)) and x.min() >= 0)
    return len(labels), (len(header) - 1,), "float", y.astype(np.int64), (int(x.max()) + 1 if whole else None)


def _npz_facts(path, x_key, y_key):
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
            if x_key not in names:
                raise ValueError(f"{path} has no array '{x_key}' (arrays: {', '.join(names) or 'none'})")
            with archive.open(x_key + ".npy") as f:  # the header only: x is not read
                version = np.lib.format.read_magic(f)
                x_shape, _, x_dtype = np.lib.format._read_array_header(f, version)
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not a valid .npz file (expected a zip archive made by np.savez)") from None
    with np.load(path, allow_pickle=False) as archive:
        if y_key not in archive.files:
            raise ValueError(f"{path} has no array '{y_key}' (arrays: {', '.join(archive.files)})")
        y = archive[y_key].reshape(-1)
        x = archive[x_key] if x_dtype.kind in "iu" else None  # integer features: read for their range
    if len(x_shape) < 2 or x_shape[0] != len(y):
        raise ValueError(f"{path}: '{x_key}' has shape {list(x_shape)}; expected one row per label ({len(y)})")
    if y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() > 2**31 - 1)):
        raise ValueError(f"{path}: array '{y_key}' must hold integer class labels in [0, 2147483647]")
    kind = "int64" if x_dtype.kind in "iu" else "float"
    top = int(x.max()) + 1 if x is not None and x.size and x.min() >= 0 else None
    return len(y), tuple(x_shape[1:]), kind, y.astype(np.int64), top


def client_file_facts(path: str, x_key: str = "x", y_key: str = "y"):
    """(examples, shape of one example, how features are stored ("float" or "int64"), labels, and
    1 + the largest feature when all are whole numbers >= 0 (token ids), else None) of one file."""
    if path.endswith(".tfrecord"):
        return _tfrecord_facts(path, x_key, y_key)
    if path.endswith(".csv"):
        return _csv_facts(path, y_key)
    return _npz_facts(path, x_key, y_key)


def count_csv_rows(path: str) -> int:
    """Data rows of a CSV file (the header row is not one)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def count_npz_labels(path: str, y_key: str = "y") -> int:
    """Labels (examples) of an npz archive."""
    with np.load(path, allow_pickle=False) as archive:
        return len(archive[y_key])


REQUIRES = {
    "client_files": (),
    "checked_client_files": ("client_files",),
    "count_tfrecord_records": (),
    "tfrecord_records": (),
    "_varint": (),
    "_proto_fields": ("_varint",),
    "parse_example": ("_proto_fields", "_feature_values"),
    "_feature_values": ("_proto_fields", "_varint"),
    "_tfrecord_facts": ("tfrecord_records", "parse_example"),
    "_csv_facts": (),
    "_npz_facts": (),
    "client_file_facts": ("_tfrecord_facts", "_csv_facts", "_npz_facts"),
    "count_csv_rows": (),
    "count_npz_labels": (),
}
