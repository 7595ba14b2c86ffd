"""What a data file named in a spec is, and how much check would read from it — before reading it.

`fedlang check` loads a spec's .npz or .csv to learn its shape, classes and clients. Two things
are decided here first, from the file system and the archive's directory alone:

* the path names a regular file (a folder, a FIFO — which would block the read — or a device is
  reported as what it is, not as "file not found");
* an .npz's arrays, as their .npy headers declare them, fit in MAX_NPZ_BYTES: an archive of a
  few MB can decompress to gigabytes (zeros deflate ~1000:1), and NumPy allocates the declared
  array before reading it.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from ..files import file_kind

MAX_NPZ_BYTES = 1 << 30  # 1 GiB of arrays (decompressed) read by check from one .npz


def not_a_file(path: Path) -> str | None:
    """'a directory' (a FIFO, a device, a socket) when `path` exists and is not a regular file."""
    try:
        mode = os.stat(path).st_mode  # stat never opens, so a FIFO cannot block it
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return None  # missing, unreadable or unnameable: the loader reports it
    return None if stat.S_ISREG(mode) else file_kind(mode)


def npz_declared_bytes(path: Path, keys: list[str]) -> dict[str, int]:
    """Decompressed bytes of each of `keys` stored in the .npz at `path`, from its .npy headers.

    Reads the zip directory and at most a few KB of each member. Members that are missing or
    unreadable are left out (the loader reports them); a header that declares more data than
    the member holds counts as its declared size, which is what NumPy would allocate.
    """
    sizes: dict[str, int] = {}
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError):
        return sizes
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        for key in keys:
            info = members.get(f"{key}.npy")
            if info is None:
                continue
            try:
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(member, max_header_size=10_000)
            except Exception:  # noqa: BLE001 — not an .npy member; np.load says why
                continue
            count = 1
            for n in shape:
                count *= int(n)
            sizes[key] = max(count * dtype.itemsize, info.file_size)
    return sizes


def npz_too_large(path: Path, keys: list[str]) -> str | None:
    """A message when the arrays check would load from the .npz exceed MAX_NPZ_BYTES."""
    sizes = npz_declared_bytes(path, keys)
    total = sum(sizes.values())
    if total <= MAX_NPZ_BYTES:
        return None
    parts = ", ".join(f"'{k}' {_size(v)}" for k, v in sizes.items())
    return (f"{path.name} holds {_size(total)} of arrays when decompressed ({parts}); check reads at "
            f"most {_size(MAX_NPZ_BYTES)} from an .npz")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
