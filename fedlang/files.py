"""Reading a file named by the user without blocking on it or reading it without end.

A path can name a FIFO (opening it waits for a writer), a device (`/dev/zero` never ends),
a directory or a socket. `read_regular_file` opens without blocking, refuses anything but a
regular file with a clear `OSError`, and reads at most `limit + 1` bytes, so the caller can
tell "too large" from "exactly at the limit".
"""

from __future__ import annotations

import errno
import os
import stat

MAX_SPEC_BYTES = 1 << 20  # 1 MiB: a spec is a page of text; the largest example is under 2 KiB


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular_file(path: str | os.PathLike, limit: int) -> bytes:
    """Up to `limit + 1` bytes of the regular file at `path`; OSError for anything else."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)  # O_NONBLOCK: opening a FIFO does not wait for a writer
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"it is {file_kind(mode)}, not a regular file", str(path))
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
