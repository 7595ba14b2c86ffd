"""Start TFF's worker_binary as a child whose lifetime this process owns.

Without TensorFlow, so that `fedlang worker` (fedlang/runtime/worker_service.py) imports the very
definition the emitted programs copy (with fedlang/lib/tff_worker.py, which calls it).
"""
import ctypes
import os
import signal
import subprocess


def start_worker_binary(binary, port, log):
    """TFF's worker_binary on `port`, writing to the file `log` (never our stdout: safe to pipe), in
    its own session (a terminal's Ctrl-C reaches only us). It dies with this process even on
    SIGKILL, and has two malloc arenas unless MALLOC_ARENA_MAX is set (glibc's 8 per core let its
    memory grow with every call)."""
    libc, parent = ctypes.CDLL(None), os.getpid()

    def die_with_parent():  # in the child, before exec: 1 is PR_SET_PDEATHSIG; the parent may be gone already
        if libc.prctl(1, signal.SIGKILL) or os.getppid() != parent:
            os._exit(1)

    return subprocess.Popen([binary, f"--port={port}"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            env={"MALLOC_ARENA_MAX": "2", **os.environ}, preexec_fn=die_with_parent,
                            start_new_session=True)


REQUIRES: dict[str, tuple[str, ...]] = {"start_worker_binary": ()}
