"""The standalone program's run directory (`python program.py --out DIR`, fedlang/lib/monitor.py
RunDirectory): the same rows, alerts and checkpoint rounds as `fedlang run`; SIGTERM checkpoints
the last completed round and a second start resumes to the uninterrupted result. The spec is a tiny version of
examples/monitored_participation.fed: simulated availability, dropout and a deadline (the
participation alert), client attributes (the participants' spread in every row)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fedlang.lib import simulation as sim

from .support import assert_no_worker_left, compile_text, read_jsonl, run_fedlang, subprocess_env

pytestmark = [pytest.mark.tff]

SPEC = """\
experiment "tiny-participation"
seed 5
model linear {
  input   [64]
  dense   10 softmax
  loss    sparse_categorical_crossentropy
  metrics [accuracy]
}
data digits {
  source    sklearn.digits
  scale     minmax
  partition iid(clients = 60)
  batch 8
}
train fedavg {
  rounds 4   clients_per_round 8   local_epochs 1
  client_optimizer sgd(learning_rate = 0.3)
}
simulation {
  available 0.3   dropout 0.1
  speed lognormal(median = 0.05, sigma = 1)   deadline 2.5
  attribute device(phone = 0.65, tablet = 0.3, laptop = 0.05)
}
monitor {
  checkpoint every 2
  alert participation < 0.7 -> warn
  alert device_laptop < 1 -> warn
}
"""


def _without_time(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _program(work, *args):
    return [sys.executable, str(work / "program.py"), *map(str, args)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(`fedlang run` dir, emitted program's --out dir, the work folder, the compiled spec)."""
    work = tmp_path_factory.mktemp("runfiles")
    (work / "tiny.fed").write_text(SPEC)
    compiled = compile_text(SPEC, "tiny.fed")
    (work / "program.py").write_bytes(compiled.program_bytes())
    result = run_fedlang("run", work / "tiny.fed", "--out", work / "run", "-q", timeout=600)
    assert result.returncode == 0, result.stderr
    emitted = subprocess.run(_program(work, "--out", work / "emitted"), cwd=work, capture_output=True, text=True,
                             timeout=600, env=subprocess_env())
    assert emitted.returncode == 0, emitted.stderr
    assert_no_worker_left()
    return work / "run", work / "emitted", work, compiled, emitted.stdout


def _checkpoints(out):
    return sorted((p.name for p in (out / "checkpoints").iterdir() if "_temp" not in p.name),
                  key=lambda name: int(name.rsplit("_", 1)[1])) if (out / "checkpoints").is_dir() else []


def test_the_emitted_program_writes_the_rows_alerts_and_checkpoints_of_fedlang_run(runs):
    run, emitted, _, _, stdout = runs
    rows = read_jsonl(emitted / "metrics.jsonl")
    assert len(rows) == 4 and _without_time(rows) == _without_time(read_jsonl(run / "metrics.jsonl"))
    assert read_jsonl(emitted / "alerts.jsonl") == read_jsonl(run / "alerts.jsonl")
    assert _checkpoints(emitted) == json.loads((run / "summary.json").read_text())["checkpoints"]
    assert _checkpoints(emitted) == ["program_state_2", "program_state_4"]  # checkpoint every 2
    assert "alert after round" in stdout


def test_participation_alert_and_spread_follow_the_drawn_conditions(runs):
    run, _, _, compiled, _ = runs
    rows, events = read_jsonl(run / "metrics.jsonl"), read_jsonl(run / "alerts.jsonl")
    config = sim.prepare_simulation(dict(compiled.checked.simulation.config))
    sizes = np.array(compiled.checked.data.client_sizes)
    expected, holding = [], {"participation < 0.7": False, "device_laptop < 1": False}
    for row in rows:
        drawn = sim.simulate_round(np.random.default_rng([5, row["round"]]), config, row["round"], sizes, 8, 1, 8, 0, 0)
        spread = sim.participant_spread(config, drawn["clients"])
        assert {k: row[k] for k in spread} == spread
        assert row["device_phone"] + row["device_tablet"] + row["device_laptop"] == row["completed"]
        for text, holds in (("participation < 0.7", row["participation"] < 0.7),
                            ("device_laptop < 1", row["device_laptop"] < 1)):
            if holds and not holding[text]:
                expected.append((row["round"], text))
            holding[text] = holds
    assert sorted((e["round"], e["alert"]) for e in events) == sorted(expected)
    assert any(text == "participation < 0.7" for _, text in expected), "re-tune SPEC: participation never < 0.7"


def test_sigterm_checkpoints_the_last_round_and_a_restart_resumes(runs):
    _, emitted, work, _, _ = runs
    out = work / "terminated"
    args = _program(work, "--out", out, "--checkpoint-every", "100")
    proc = subprocess.Popen(args, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env())
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "metrics.jsonl").is_file() and len(read_jsonl(out / "metrics.jsonl")) >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, stderr
    done = len(read_jsonl(out / "metrics.jsonl"))
    # The last completed round is checkpointed (the one before it when SIGTERM came between the
    # row's line and train() handing the round to the checkpoints): not a regular one (every 100).
    said = re.search(r"the checkpoint of round (\d+)", stderr)
    saved = int(said.group(1)) if said else 0
    assert 1 <= done < 4 and done - 1 <= saved <= done, stderr
    assert _checkpoints(out) == ([f"program_state_{saved}"] if saved else [])
    resumed = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=600, env=subprocess_env())
    assert resumed.returncode == 0, resumed.stderr
    assert (f"resumed from the checkpoint of round {saved}" in resumed.stdout) == bool(saved)
    assert _without_time(read_jsonl(out / "metrics.jsonl")) == _without_time(read_jsonl(emitted / "metrics.jsonl"))
    assert read_jsonl(out / "alerts.jsonl") == read_jsonl(emitted / "alerts.jsonl")
    assert _checkpoints(out)[-1] == "program_state_4"
    assert_no_worker_left()


def test_the_harness_turns_interrupts_and_nonfinite_rounds_into_exit_codes(tmp_path, capsys):
    """`with RunDirectory(...)` in main(): Ctrl-C/SIGTERM → a checkpoint of the last completed
    round and exit 130; a NaN/inf round (faults.NonFiniteRound) → exit 1 with the reason."""
    from fedlang.lib.faults import NonFiniteRound
    from fedlang.lib.monitor import RunDirectory

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        run = RunDirectory(str(tmp_path / "out"), every=100)
        assert run.restore({"w": np.zeros(2, np.float32)}) is None
        with pytest.raises(SystemExit) as stopped, run:
            run.completed(1, {"w": np.ones(2, np.float32)}, [{"round": 1}], due=False)
            raise KeyboardInterrupt
        assert stopped.value.code == 130 and "the checkpoint of round 1" in capsys.readouterr().err
        again = RunDirectory(str(tmp_path / "out"), every=100)
        done, state, rows = again.restore({"w": np.zeros(2, np.float32)})
        assert (done, state["w"].tolist(), rows) == (1, [1.0, 1.0], [{"round": 1}])
        with pytest.raises(SystemExit) as failed, RunDirectory(None, every=100):
            raise NonFiniteRound("round 3: the update of client 2 is not finite")
        assert failed.value.code == "stopped: round 3: the update of client 2 is not finite"
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_a_checkpoint_holds_the_rows_of_its_own_round(tmp_path, capsys):
    """train() appends the next round's row before that round is complete: an interrupt in between
    checkpoints round k with k's rows only. `--checkpoint-every 0` saves only when a round is due."""
    from fedlang.lib.monitor import RunDirectory

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        run = RunDirectory(str(tmp_path / "out"), every=0)
        run.restore({"w": np.zeros(2, np.float32)})
        rows = [{"round": 1}]
        with pytest.raises(SystemExit), run:
            run.completed(1, {"w": np.ones(2, np.float32)}, rows, due=False)
            assert run.saved is None  # every 0, not due: nothing saved yet
            rows.append({"round": 2})  # round 2 under way when the interrupt comes
            raise KeyboardInterrupt
        capsys.readouterr()
        done, _, saved_rows = RunDirectory(str(tmp_path / "out"), every=0).restore({"w": np.zeros(2, np.float32)})
        assert (done, saved_rows) == (1, [{"round": 1}])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_a_checkpoint_of_another_program_is_refused_and_nothing_is_lost(tmp_path, capsys):
    """`--out` reused after the spec changed: TFF's manager would load a same-structure state of other
    shapes silently (and a different structure with a ValueError); the harness refuses both with a
    clear message before it truncates metrics.jsonl."""
    from fedlang.lib.monitor import RunDirectory

    out = tmp_path / "out"
    run = RunDirectory(str(out), every=1)
    run.restore({"w": np.zeros(2, np.float32)})
    run.on_round({"round": 1, "seconds": 0.1, "train_loss": 1.0})
    run.completed(1, {"w": np.ones(2, np.float32)}, [{"round": 1}], due=True)
    capsys.readouterr()
    before = (out / "metrics.jsonl").read_text()
    for other in ({"w": np.zeros(3, np.float32)}, {"w": np.zeros(2, np.float32), "b": np.zeros(1, np.float32)}):
        with pytest.raises(SystemExit) as refused:
            RunDirectory(str(out), every=1).restore(other)
        assert "another program's state" in str(refused.value.code)
        assert (out / "metrics.jsonl").read_text() == before
    done, state, _ = RunDirectory(str(out), every=1).restore({"w": np.zeros(2, np.float32)})
    assert (done, state["w"].tolist()) == (1, [1.0, 1.0])


def test_a_program_without_declared_checkpoints_writes_the_rows_and_exits_130(tmp_path):
    """No `checkpoint every` in the spec: the program copies RunLog, not RunDirectory. `--out` gets the
    rows of `fedlang run` (which checkpoints every spec) and no checkpoints; a second run replaces the
    files instead of appending to them; SIGTERM exits 130 and leaves no worker."""
    spec = SPEC[:SPEC.index("monitor {")]  # the tiny spec without its monitor block
    (tmp_path / "plain.fed").write_text(spec)
    compiled = compile_text(spec, "plain.fed")
    program = compiled.program()
    assert "class RunLog" in program and "RunDirectory" not in program and "FileProgramStateManager" not in program
    (tmp_path / "program.py").write_bytes(compiled.program_bytes())
    result = run_fedlang("run", tmp_path / "plain.fed", "--out", tmp_path / "run", "-q", timeout=600)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["checkpoints"] == ["program_state_4"]  # unasked
    out = tmp_path / "emitted"
    for _ in range(2):  # the second run replaces the first one's rows
        emitted = subprocess.run(_program(tmp_path, "--out", out), cwd=tmp_path, capture_output=True, text=True,
                                 timeout=600, env=subprocess_env())
        assert emitted.returncode == 0, emitted.stderr
        assert _without_time(read_jsonl(out / "metrics.jsonl")) == _without_time(read_jsonl(tmp_path / "run" /
                                                                                               "metrics.jsonl"))
    assert not (out / "checkpoints").exists() and not (out / "alerts.jsonl").exists()  # no alerts in this spec
    proc = subprocess.Popen(_program(tmp_path, "--out", tmp_path / "stopped", "--rounds", 50), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not (
            (tmp_path / "stopped" / "metrics.jsonl").is_file()
            and read_jsonl(tmp_path / "stopped" / "metrics.jsonl")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130 and "interrupted" in stderr.splitlines(), stderr
    assert_no_worker_left()


def test_a_program_piped_into_a_reader_that_leaves_exits_without_a_traceback(tmp_path):
    """`python program.py | head -1`: the next row meets a closed pipe; RunLog ends the program with
    exit 1 and no traceback, and the worker goes with it."""
    spec = SPEC[:SPEC.index("monitor {")]
    (tmp_path / "program.py").write_bytes(compile_text(spec, "plain.fed").program_bytes())
    proc = subprocess.Popen(_program(tmp_path, "--rounds", 50), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env())
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    stderr = proc.communicate(timeout=300)[1]
    assert proc.returncode == 1, stderr
    assert first.startswith("round    1") and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert_no_worker_left()


def test_runlog_keeps_an_earlier_runs_files_until_its_first_row_and_refuses_checkpoint_folders(tmp_path):
    """A program without declared checkpoints never deletes what it cannot replace: an earlier run's
    rows stay until the first new row is written, and a folder holding checkpoints is refused."""
    from fedlang.lib.monitor import RunLog

    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"round": 7}\n')
    (out / "alerts.jsonl").write_text('{"round": 7, "alert": "x"}\n')
    run = RunLog(str(out))
    assert (out / "metrics.jsonl").read_text() == '{"round": 7}\n'  # a run that fails before round 1 loses nothing
    run.add("metrics.jsonl", {"round": 1})
    assert read_jsonl(out / "metrics.jsonl") == [{"round": 1}] and not (out / "alerts.jsonl").exists()
    (out / "checkpoints").mkdir()
    with pytest.raises(SystemExit) as refused:
        RunLog(str(out))
    assert "holds checkpoints" in str(refused.value.code)
    assert read_jsonl(out / "metrics.jsonl") == [{"round": 1}]
