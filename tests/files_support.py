"""Write small per-client data files for the `files(…)` source tests — TFRecord without TensorFlow.

`write_tfrecord` frames serialized tf.train.Example messages as TFRecord does (length, masked
CRC-32C of the length, data, masked CRC-32C of the data), so TensorFlow reads the files back
(tests/tff/test_files_source.py checks it does).
"""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import numpy as np


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def _masked_crc(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def example_bytes(features: dict) -> bytes:
    """A serialized tf.train.Example: float arrays become float lists, integer arrays int64 lists."""
    entries = b""
    for name, values in features.items():
        values = np.asarray(values).reshape(-1)
        if values.dtype.kind == "f":
            feature = _field(2, _field(1, values.astype("<f4").tobytes()))
        else:
            feature = _field(3, _field(1, b"".join(_varint(int(v) & (2**64 - 1)) for v in values)))
        entries += _field(1, _field(1, name.encode()) + _field(2, feature))
    return _field(1, entries)


def write_tfrecord(path: Path, records: list[bytes]) -> None:
    with open(path, "wb") as f:
        for data in records:
            length = struct.pack("<Q", len(data))
            f.write(length + struct.pack("<I", _masked_crc(length)) + data + struct.pack("<I", _masked_crc(data)))


def write_clients(folder: Path, fmt: str, sizes: list[int], features: int = 4, classes: int = 3,
                  seed: int = 0, integer: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """One file per client in `folder` (client_00.fmt, …); returns each client's (x, y)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for k, n in enumerate(sizes):
        x = (rng.integers(0, 10, size=(n, features)) if integer
             else rng.normal(k, 1.0, size=(n, features))).astype(np.int64 if integer else np.float32)
        y = rng.integers(0, classes, size=n).astype(np.int64)
        y[0] = classes - 1  # every client knows the largest class
        path = folder / f"client_{k:02d}.{fmt}"
        if fmt == "tfrecord":
            write_tfrecord(path, [example_bytes({"x": x[i], "y": y[i:i + 1]}) for i in range(n)])
        elif fmt == "npz":
            np.savez(path, x=x, y=y)
        else:
            with open(path, "w", newline="") as f:
                out = csv.writer(f)
                out.writerow([f"f{j}" for j in range(features)] + ["y"])
                for row, label in zip(x, y):
                    out.writerow([repr(float(v)) if not integer else int(v) for v in row] + [int(label)])
        written.append((x, y))
    return written
