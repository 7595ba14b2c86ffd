"""`fedlang run`'s checkpoints: TFF's FileProgramStateManager plus a SHA-256 manifest per checkpoint.

After round ``r`` the run saves ``{"state": <the TFF server state>, "round": r, "record": <JSON of
the metric rows so far>}`` with ``tff.program.FileProgramStateManager`` (a SavedModel written to a
temporary directory, then renamed: a kill mid-write leaves only an ignored ``*_temp*``
directory). A manifest with the SHA-256 of every file is written next to it (write, then rename),
so a truncated or damaged checkpoint is detected and the previous one used. Nothing else needs
saving to repeat the run exactly: each round's client sample and shuffles come from
``np.random.default_rng([SEED, round])``, and seeded DP noise keeps its RNG counter inside the
server state.

`RunCheckpoints` is the `checkpoints` hook that `fedlang run` hands to the program's `train`
(docs/language.md, "The emitted program"): the standalone program's RunDirectory
(fedlang/lib/monitor.py) with these checkpoints. This module is fedlang's, never copied into
programs.
"""

import asyncio
import hashlib
import json
import os
import shutil
import sys

import numpy as np
import tensorflow_federated as tff

from ..lib.monitor import RunDirectory, RunLog


def _checkpoint_digest(path):
    """{relative file name: sha256} of every file under a checkpoint directory."""
    digests = {}
    for folder, _, files in os.walk(path):
        for name in sorted(files):
            full = os.path.join(folder, name)
            with open(full, "rb") as f:
                digests[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return digests


def save_checkpoint(directory, round_num, state, record, keep=3):
    """Save the server state after `round_num` with `record` (JSON-able: the metric rows).

    A checkpoint for `round_num` that already exists is replaced (a resumed run that fell back
    past a damaged checkpoint writes it again).
    """
    manager = tff.program.FileProgramStateManager(directory, prefix="program_state_", keep_total=keep,
                                                  keep_first=False)
    path = os.path.join(directory, f"program_state_{round_num}")
    manifest = path + ".sha256.json"
    for stale in (manifest, path):
        if os.path.isdir(stale):
            shutil.rmtree(stale)
        elif os.path.exists(stale):
            os.remove(stale)
    value = {"state": state, "round": np.int64(round_num), "record": json.dumps(record)}
    asyncio.run(manager.save(value, round_num))
    digest = {"round": round_num, "files": _checkpoint_digest(path)}
    with open(manifest + ".tmp", "w") as f:
        json.dump(digest, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(manifest + ".tmp", manifest)
    for name in os.listdir(directory):  # manifests of checkpoints the manager removed
        if name.endswith(".sha256.json") and not os.path.isdir(os.path.join(directory, name[:-len(".sha256.json")])):
            os.remove(os.path.join(directory, name))


def load_checkpoint(directory, structure, report=None):
    """The newest intact checkpoint in `directory` as (round, state, record), or None.

    `structure` is a state of the same process (e.g. `process.initialize()`). Incomplete,
    truncated or damaged checkpoints are reported (to `report`, else standard error), moved
    aside (to `rejected_*`) and skipped.
    """
    report = report or (lambda message: print(f"warning: {message}", file=sys.stderr, flush=True))
    if not os.path.isdir(directory):
        return None
    for name in os.listdir(directory):  # a save killed before its rename
        if name.startswith("program_state_") and "_temp" in name:
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    manager = tff.program.FileProgramStateManager(directory, prefix="program_state_")
    versions = asyncio.run(manager.get_versions()) or []
    for version in sorted(versions, reverse=True):
        path = os.path.join(directory, f"program_state_{version}")
        problem = None
        try:
            with open(path + ".sha256.json") as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            problem = "it has no complete manifest (the save was cut short)"
        else:
            if manifest.get("files") != _checkpoint_digest(path) or manifest.get("round") != version:
                problem = "its files do not match their SHA-256 manifest (truncated or damaged)"
        if problem is None:
            try:
                loaded = asyncio.run(manager.load(version, {"state": structure, "round": np.int64(0),
                                                            "record": ""}))
                record = loaded["record"]
                record = json.loads(record.decode() if isinstance(record, bytes) else record)
                if int(loaded["round"]) != version:
                    raise ValueError(f"it holds round {int(loaded['round'])}")
                return version, loaded["state"], record
            except Exception as exc:  # noqa: BLE001 - any failure to read means: use an older one
                problem = f"it cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
        report(f"checkpoint of round {version} is unusable: {problem}; using the previous one")
        for moved in (path, path + ".sha256.json"):
            target = os.path.join(directory, "rejected_" + os.path.basename(moved))
            if os.path.isdir(target):
                shutil.rmtree(target)
            if os.path.exists(moved):
                os.replace(moved, target)
    return None


class RunCheckpoints(RunDirectory):
    """train()'s `checkpoints` hook for `fedlang run`: fedlang/lib/monitor.py's RunDirectory (a checkpoint
    every `every` rounds, whenever train() says one is due, and of the last completed round on
    Ctrl-C or SIGTERM: `save`), with SHA-256-checked checkpoints in `directory` (save_checkpoint,
    load_checkpoint). The runner writes the run's other files; `on_restore(round, rows)` learns a
    resumed run."""

    def __init__(self, directory, every, on_restore):  # no manager of RunDirectory's own: the runner owns the files
        RunLog.__init__(self, directory, fresh=False)
        self.every, self.on_restore, self.last, self.saved, self.manager = every, on_restore, None, None, None

    def restore(self, state):
        restored = load_checkpoint(self.out_dir, state)
        if restored is None:
            return None
        self.saved, state, record = restored
        self.on_restore(self.saved, record["rows"])
        return self.saved, state, record["rows"]

    def write(self, round_num, state, rows):
        save_checkpoint(self.out_dir, round_num, state, {"rows": rows})
