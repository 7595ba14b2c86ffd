"""Emitted programs pay for what they use: every copied helper is called, and a helper for a
feature appears exactly when the spec uses that feature (monitor alerts, budget actions, streamed
files, FedPer). The run harness that only `fedlang run` needs (SHA-256-checked checkpoints, the
full run directory, the GPU line) lives in fedlang/runtime and never in a program."""

import ast
from pathlib import Path

import pytest

from fedlang.diagnostics import Source
from fedlang.pipeline import compile_file, compile_source

from ..conftest import REPO
from ..files_support import write_clients

EXAMPLES = sorted((REPO / "examples").rglob("*.fed"))
GOLDEN = sorted((REPO / "tests" / "fixtures" / "golden").glob("*.fed"))
FILES_SPEC = """\
seed 1
model m {
  input [4]
  dense 3 softmax
  loss sparse_categorical_crossentropy
}
data { source files("silos/*.csv") }
train fedavg { rounds 1 }
"""


def _program(spec: Path) -> str:
    return compile_file(spec.relative_to(REPO)).program()


def _defined(program: str) -> set[str]:
    return {node.name for node in ast.parse(program).body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


@pytest.mark.parametrize("spec", EXAMPLES + GOLDEN, ids=lambda p: str(p.relative_to(REPO)))
def test_every_name_a_program_reads_is_defined(spec: Path, in_repo):
    """Helpers copied from several lib modules (e.g. tff_worker.py's LocalWorker calls worker_process.py's
    start_worker_binary) leave no name undefined: each name read is a builtin, an import, a top-level
    definition or assignment, or bound inside the function that reads it."""
    import builtins

    tree = ast.parse(_program(spec))
    bound = set(dir(builtins)) | {"__file__", "__name__", "__doc__"}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert read - bound == set()


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: str(p.relative_to(REPO / "examples")))
def test_every_definition_is_reachable_from_the_entry_points(spec: Path, in_repo):
    """No dead code: each top-level function or class is used, transitively, by main() or by
    train() (the entry `fedlang run` calls) or by the module's own top-level statements."""
    tree = ast.parse(_program(spec))
    defs = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    names = {name: {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in defs}
             for name, node in defs.items()}
    todo = ["main", "train"] + [n.id for node in tree.body if not isinstance(node, (ast.FunctionDef, ast.ClassDef))
                                for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in defs]
    reached: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(names[name])
    assert set(defs) - reached == set()


def _budget_spec(action: str) -> str:
    """examples/monitored_dp_digits.fed with its epsilon alert's action replaced."""
    text = (REPO / "examples" / "monitored_dp_digits.fed").read_text()
    assert "alert epsilon > 0.9 of target -> stop" in text
    return text.replace("alert epsilon > 0.9 of target -> stop", f"alert epsilon > 0.9 of target -> {action}")


@pytest.mark.parametrize("text, present", [
    ((REPO / "examples" / "quickstart.fed").read_text(), set()),
    ((REPO / "examples" / "monitored_participation.fed").read_text(), {"Monitor", "describe_alert", "ALERTS"}),
    (_budget_spec("stop"), {"Monitor", "describe_alert", "ALERTS"}),
    (_budget_spec("raise_noise"), {"Monitor", "describe_alert", "ALERTS", "change_dp_mechanism"}),
], ids=["no-monitor", "alerts", "dp-alerts", "budget-action"])
def test_alert_helpers_only_with_alerts(text, present, in_repo):
    program = compile_source(Source("examples/spec.fed", text), REPO / "examples").program()
    found = {name for name in ("Monitor", "describe_alert", "change_dp_mechanism") if name in _defined(program)}
    found |= {"ALERTS"} if "\nALERTS = [" in program else set()
    assert found == present
    assert ("on_alert=None" in program) == bool(present)


def test_data_checks_and_round_guard_only_where_they_run(in_repo, tmp_path):
    write_clients(tmp_path / "silos", "csv", [30, 45, 12])
    streamed = _defined(compile_source(Source("s.fed", FILES_SPEC), tmp_path).program())
    fedper = _defined(_program(REPO / "examples" / "fedper_shards.fed"))
    quickstart = _defined(_program(REPO / "examples" / "quickstart.fed"))
    assert "check_client_data" not in streamed and "guard_round" in streamed
    assert "guard_round" not in fedper and "measure_update_norms" not in fedper and "model_fn" not in fedper
    assert {"guard_round", "measure_update_norms", "model_fn"} <= quickstart
    # check replayed every client of a bundled set: no check of its own, unless a factor may overflow
    assert "check_client_data" not in quickstart and "check_client_data" not in fedper
    text = (REPO / "examples" / "quickstart.fed").read_text()
    overflowing = text.replace("scale     minmax", "scale     1e38")
    assert overflowing != text
    assert "check_client_data" in _defined(compile_source(Source("examples/q.fed", overflowing), REPO).program())
    shrinking = text.replace("scale     minmax", "scale     0.0625")
    assert "check_client_data" not in _defined(compile_source(Source("examples/q.fed", shrinking), REPO).program())
    # a file the program reads again when it runs is checked again
    assert "check_client_data" in _defined(_program(REPO / "examples" / "csv_natural.fed"))


def test_standalone_checkpoints_only_when_the_spec_declares_them(in_repo):
    """`fedlang run` checkpoints every spec; the program copies RunDirectory (checkpoints, resume)
    only for `checkpoint every k` or a `checkpoint` alert, else the shorter RunLog."""
    text = (REPO / "examples" / "quickstart.fed").read_text()
    programs = {extra: compile_source(Source("examples/q.fed", text + extra), REPO).program()
                for extra in ("", "monitor { checkpoint every 4 }\n", "monitor { alert train_loss > 9 -> checkpoint }\n",
                              "monitor { alert train_loss > 9 -> warn }\n")}
    for extra, program in programs.items():
        resumable = "checkpoint" in extra
        assert ("RunDirectory" in _defined(program)) == resumable, extra
        assert "RunLog" in _defined(program)  # RunDirectory builds on it
        assert ("checkpoints=run" in program) == resumable and ("--checkpoint-every" in program) == resumable
        assert ("CHECKPOINT_EVERY = 4 " in program) == ("every 4" in extra)


@pytest.mark.parametrize("spec", EXAMPLES + GOLDEN, ids=lambda p: str(p.relative_to(REPO)))
def test_every_constant_is_read(spec: Path, in_repo):
    """No unused constants (SHUFFLE_BUFFER without shuffling, EVAL_EVERY without an evaluation,
    ON_NONFINITE without a guarded round, …). EXPERIMENT names the run and is kept."""
    tree = ast.parse(_program(spec))
    assigned = [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)]
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert [name for name in assigned if name not in read] == ["EXPERIMENT"]


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: str(p.relative_to(REPO / "examples")))
def test_the_run_harness_of_fedlang_run_is_not_copied(spec: Path, in_repo):
    defined = _defined(_program(spec))
    assert "RunLog" in defined  # the standalone program's --out (and, as RunDirectory, TFF's own checkpoints)
    assert not defined & {"save_checkpoint", "load_checkpoint", "RunProgress", "RunFiles", "stop_on_sigterm",
                          "interrupts_checkpointed", "gpu_note", "print_round"}


_DATA_LIBS = ("data.py", "files.py", "emnist.py", "client_tests.py")


def _copied_data_helpers(program: str) -> dict[str, set[str]]:
    """The data helpers (fedlang/lib/data.py, files.py, emnist.py, client_tests.py) a program defines, each with the
    names the rest of the program loads outside that helper's own definition."""
    from fedlang.emit import LIB

    lib_names = {n.name for module in _DATA_LIBS for n in ast.parse((LIB / module).read_text()).body
                 if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    tree = ast.parse(program)
    copied = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in lib_names:
            copied[node.name] = {n.id for other in tree.body if other is not node for n in ast.walk(other)
                                 if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return copied


@pytest.mark.parametrize("spec", EXAMPLES + GOLDEN, ids=lambda p: str(p.relative_to(REPO)))
def test_every_copied_data_helper_is_called_and_none_is_checked(spec: Path, in_repo):
    """Programs copy the unchecked cores of fedlang/lib/data.py (check proved their arguments), never
    a `checked_` wrapper, DataError or an argument checker, and each copied data helper is called."""
    copied = _copied_data_helpers(_program(spec))
    assert not {n for n in copied if n.startswith(("checked_", "_check")) or n in ("DataError", "_cell_kind")}
    assert [name for name, loaded_elsewhere in copied.items() if name not in loaded_elsewhere] == []


@pytest.mark.parametrize("test_line", ["", "test holdout(0.25)"], ids=["no-holdout", "holdout"])
def test_streamed_programs_copy_holdout_tails_only_with_a_holdout(test_line, in_repo, tmp_path):
    write_clients(tmp_path / "silos", "csv", [30, 45, 12])
    spec = FILES_SPEC.replace('source files("silos/*.csv") }', f'source files("silos/*.csv")\n  {test_line}\n}}')
    copied = _copied_data_helpers(compile_source(Source("s.fed", spec), tmp_path).program())
    assert ("holdout_tails" in copied) == bool(test_line)
    assert [name for name, loaded_elsewhere in copied.items() if name not in loaded_elsewhere] == []


@pytest.mark.parametrize("spec", EXAMPLES + GOLDEN, ids=lambda p: str(p.relative_to(REPO)))
def test_no_local_is_assigned_and_never_read(spec: Path, in_repo):
    """No dead locals in the program part (e.g. `rng` in a load_data() that draws nothing)."""
    program = _program(spec)
    part = program[:program.rindex("\n# Helpers (copied")]
    for function in (n for n in ast.walk(ast.parse(part)) if isinstance(n, ast.FunctionDef)):
        stored = {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        loaded = {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        assert sorted(stored - loaded - {"_"}) == [], function.name
