"""What fedlang prints and reads, against hostile specs, data files and paths (issue 8).

Terminal: no control character from a spec or data file reaches the terminal (diagnostics,
`check`/`plan` summaries, the run header, errors); the run header does not interpret markup.
Disclosure: errors about a data file describe its contents and never quote them.
CLI/IO: FIFOs, devices, directories, oversized specs, missing output folders and unknown
`~user` paths are clear errors (exit 1 or 2), never a hang, a traceback or exit 3.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedlang.cli import main
from fedlang.diagnostics import Source
from fedlang.files import MAX_SPEC_BYTES
from fedlang.pipeline import compile_source
from fedlang.terminal import quoted, terminal_safe

from ..conftest import REPO
from .test_emit_injection import TINY_CSV, fed_string, spec_text

ESCAPES = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[32mok\x1b[0m\r\x08\u202e\x9b"


def controls(text: str) -> list[str]:
    """Characters that would act on a terminal instead of being shown (newline and tab excepted)."""
    return [c for c in text if c not in "\n\t" and (unicodedata.category(c)[0] == "C")]


def cli(*args: str, cwd: Path | None = None):
    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        os.chdir(old)


def test_terminal_safe_shows_controls_as_escapes():
    safe = terminal_safe(ESCAPES + "\n\ud800")
    assert controls(safe) == [] and "\n" not in safe
    assert "\\x1b[2J" in safe and "\\u202e" in safe and "\\ud800" in safe
    assert terminal_safe("plain ε text") == "plain ε text"
    assert quoted("x" * 500) == "'" + "x" * 60 + "…'"


# ---------------------------------------------------------------- terminal


def test_diagnostics_print_no_control_characters(tmp_path):
    """A file name and a spec string full of escapes: the error shows them, sends none."""
    spec = tmp_path / f"bad{ESCAPES.replace('/', '')}.fed"
    spec.write_text(spec_text("x", f"missing{ESCAPES}.csv"), encoding="utf-8")
    result = cli("check", str(spec))
    assert result.exit_code == 1
    assert "error[E501]" in result.stderr and "\\x1b[2J" in result.stderr
    assert controls(result.stderr) == [] and controls(result.stdout) == []


def test_check_and_plan_print_no_control_characters(tmp_path):
    (tmp_path / f"d{ESCAPES}.csv").write_bytes(TINY_CSV.read_bytes())
    spec = tmp_path / "ok.fed"
    spec.write_text(spec_text(f"name{ESCAPES}", f"d{ESCAPES}.csv"), encoding="utf-8")
    for command in ("check", "plan"):
        result = cli(command, str(spec))
        assert result.exit_code == 0, result.output
        assert controls(result.stdout) == [] and controls(result.stderr) == []
        assert "\\x1b]0;pwned" in result.stdout


def test_run_header_shows_markup_and_controls_as_text(tmp_path, monkeypatch, capsys):
    """The header of `fedlang run` (printed before TensorFlow loads) and its error line."""
    from fedlang.runtime import runner

    name = "[red]x[/red] [link=http://e.vil]y[/link]" + ESCAPES
    text = (REPO / "examples" / "quickstart.fed").read_text().replace(
        'experiment "digits-quickstart"', f"experiment {fed_string(name)}")
    compiled = compile_source(Source("quickstart.fed", text), REPO / "examples")

    def refuse(program, path):  # stand in for loading TensorFlow: fail at once with hostile text
        raise RuntimeError(f"boom [bold]{ESCAPES}")

    monkeypatch.setattr(runner, "_load_program", refuse)
    code = runner.run_compiled(compiled, rounds=1, out_dir=tmp_path / "run", quiet=True)
    out, err = capsys.readouterr()
    assert code == 1
    assert "[red]x[/red] [link=http://e.vil]y[/link]" in out  # markup shown literally
    assert "boom [bold]\\x1b[2J" in err
    assert controls(out) == [] and controls(err) == []
    assert (tmp_path / "run" / "program.py").read_bytes() == compiled.program_bytes()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["experiment"] == name and summary["status"] == "failed"


# ---------------------------------------------------------------- disclosure


def check_in_subprocess(spec: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedlang", "check", str(spec)], capture_output=True,
                          text=True, env={**os.environ, **env}, cwd=REPO, timeout=120)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_naming_the_process_environment_does_not_print_it(tmp_path):
    spec = tmp_path / "environ.fed"
    spec.write_text(spec_text("x", "/proc/self/environ"), encoding="utf-8")
    result = check_in_subprocess(spec, {"FEDLANG_TEST_SECRET": "s3cr3t-t0ken"})
    assert result.returncode == 1 and "error[E501]" in result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout
    assert "FEDLANG_TEST_SECRET" not in result.stderr + result.stdout


@pytest.mark.parametrize("content, label, client", [
    ("ghp_s3cr3tT0ken4bcdef\n", "label", None),                    # a token file: header mismatch
    ("user,password\nalice,s3cr3t\n", "password", None),            # the label names a column: cells
    ("password,user\ns3cr3t,1\n", "user", None),                    # a feature cell
    ("a,b,label\n1,2,s3cr3t\n", "label", None),                     # a label cell
    ("s3cr3t,s3cr3t,label\n1,2,0\n", "label", None),                # repeated header names
    ("label,site\n0,s3cr3t\n", "label", "site"),                    # no feature columns
])
def test_errors_about_a_data_file_describe_rather_than_quote_it(tmp_path, content, label, client):
    (tmp_path / "secret.csv").write_text(content)
    spec = tmp_path / "s.fed"
    text = spec_text("x", "secret.csv").replace('label = "label", client = "site"',
                                                f'label = "{label}"' + (f', client = "{client}"' if client else ""))
    spec.write_text(text, encoding="utf-8")
    result = cli("check", str(spec))
    assert result.exit_code == 1 and "error[E501]" in result.stderr, result.output
    assert "s3cr3t" not in result.stderr and "T0ken" not in result.stderr


# ---------------------------------------------------------------- CLI and files


def test_emit_into_a_missing_folder_is_a_usage_error(tmp_path):
    for target in (tmp_path / "no" / "such" / "dir" / "p.py", "~no_such_user_fl/p.py"):
        result = cli("emit", "examples/quickstart.fed", "-o", str(target), cwd=REPO)
        assert result.exit_code == 2, result.output
        assert "does not exist (create it first)" in result.stderr and "Traceback" not in result.output


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_device_as_spec_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "spec.fed"
    os.mkfifo(fifo)  # nobody writes: opening it for a blocking read would hang
    result = cli("check", str(fifo))
    assert result.exit_code == 2 and "it is a FIFO (named pipe), not a regular file" in result.stderr
    result = cli("check", "/dev/zero")  # would never end
    assert result.exit_code == 2 and "it is a device, not a regular file" in result.stderr
    result = cli("check", str(tmp_path))
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_spec_over_the_size_limit_is_e002(tmp_path):
    spec = tmp_path / "huge.fed"
    spec.write_bytes(b"# padding\n" * (MAX_SPEC_BYTES // 10 + 1))
    result = cli("check", str(spec))
    assert result.exit_code == 1
    assert re.match(r"^.*huge\.fed:1:1: error\[E002\]: the file is larger than 1 MiB", result.stderr)
    spec.write_bytes(b"# padding\n" * (MAX_SPEC_BYTES // 10 - 1))  # just under: read, and checked
    assert "E002" not in cli("check", str(spec)).stderr


def test_a_data_path_for_an_unknown_user_is_a_positional_error(tmp_path):
    spec = tmp_path / "tilde.fed"
    spec.write_text(spec_text("x", "~no_such_user_fl/data.csv"), encoding="utf-8")
    result = cli("check", str(spec))
    assert result.exit_code == 1 and "error[E501]" in result.stderr
    assert "this machine has no user 'no_such_user_fl'" in result.stderr
