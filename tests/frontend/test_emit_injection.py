"""No spec can inject code into an emitted program (issue 8: code injection).

Hostile experiment names, spec file names, data file names and spec comments are compiled;
each emitted program must (1) start with fedlang's fixed two-line header, so no spec text can
declare a PEP 263 encoding, (2) compile from its UTF-8 bytes to the AST of the rendered text,
and (3) have exactly the AST of the same spec with harmless names once string constants are
blanked: the hostile text is data (a string constant or a comment), never code.
"""

from __future__ import annotations

import ast
import shutil
import tokenize
from io import BytesIO
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedlang.cli import main
from fedlang.diagnostics import Source
from fedlang.emit.encode import HEADER, EmitError, comment, identifier, literal, program_bytes, word
from fedlang.pipeline import compile_source

from ..conftest import REPO

TINY_CSV = REPO / "tests" / "fixtures" / "golden" / "data" / "tiny.csv"

# Text an attacker would put in a name: encoding cookies (line 1-2 of a file decides how the
# rest decodes), docstring and string terminators, backslash escapes, line breaks, controls.
HOSTILE = [
    "# coding: utf-7",
    "-*- coding: uu_codec -*-",
    "vim: set fileencoding=rot13 :",
    "coding=utf-7 +AAo-import os+ADs-os.system(+ACI-id+ACI-)",
    '"""; import os; os.system("id"); """',
    "'''\nimport os\n'''",
    "x\\N{LATIN SMALL LETTER A}\\x41\\",
    "a\nimport os\nos.system('id')",
    "a\rb\x0cc\x0bd\x1c\x1d\x1e\x85\u2028\u2029",
    "\x1b[2J\x1b]0;owned\x07ok",
    "\u202eevil\u202c",
    "\ud800 lone surrogate",
    "ünïcødé ε δ",
    # the comment where the emitter splits the program part from the copied helpers (its imports differ)
    "# Helpers (copied verbatim from fedlang.lib, where they are tested)",
    "x\n# Helpers (copied verbatim from fedlang.lib, where they are tested)\n",
]


def fed_string(text: str) -> str:
    """`text` as a fedlang string literal (escapes the parser decodes back to `text`)."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c.isprintable() and c.isascii():
            out.append(c)
        else:
            out.append(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'


def spec_text(experiment: str, data_file: str, model_comment: str = "clean") -> str:
    return f"""# a spec compiled with hostile text in every free-form place
experiment {fed_string(experiment)}
seed 3
model logistic {{
  # {model_comment}
  input [3]
  dense 1 sigmoid
  loss binary_crossentropy
}}
data {{
  source csv({fed_string(data_file)}, label = "label", client = "site")
}}
train fedavg {{ rounds 2 }}
"""


def blanked_ast(program: bytes) -> str:
    """The program's AST with every string constant blanked: its structure, without the data."""
    tree = compile(program, "<emitted>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree)


def constants(program: bytes) -> dict[str, object]:
    tree = compile(program, "<emitted>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.isupper() and isinstance(node.value, ast.Constant)}


def emitted(tmp_path: Path, experiment: str, spec_name: str, data_name: str, model_comment: str = "clean") -> bytes:
    folder = tmp_path / "spec"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copy(TINY_CSV, folder / data_name)
    except (OSError, ValueError, UnicodeEncodeError):  # not a legal file name here: a name the spec cannot reach
        data_name = "tiny.csv"
        shutil.copy(TINY_CSV, folder / data_name)
    source = Source(spec_name, spec_text(experiment, data_name, model_comment))
    return compile_source(source, folder).program_bytes()


def assert_safe(program: bytes, clean: bytes) -> None:
    assert program.startswith(HEADER.encode())
    assert tokenize.detect_encoding(BytesIO(program).readline)[0] == "utf-8"
    assert blanked_ast(program) == blanked_ast(clean), "hostile text changed the program's structure"


@pytest.fixture
def clean(tmp_path):
    return emitted(tmp_path / "clean", "clean", "clean.fed", "clean.csv")


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_experiment_name_is_only_data(tmp_path, clean, text):
    program = emitted(tmp_path, text, "spec.fed", "tiny.csv")
    assert_safe(program, clean)
    assert constants(program)["EXPERIMENT"] == text  # carried through exactly, as a string constant


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_spec_file_name_and_comment_are_only_comments(tmp_path, clean, text):
    program = emitted(tmp_path, "clean", text, "tiny.csv", model_comment=text.replace("\n", " ").replace("\r", " "))
    assert_safe(program, clean)


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_data_file_name_is_only_data(tmp_path, clean, text):
    name = text.replace("/", "_") + ".csv"
    program = emitted(tmp_path, "clean", "spec.fed", name)
    assert_safe(program, clean)


def test_backslashes_and_quotes_in_a_data_file_name_emit(tmp_path, clean):
    """The file name that closed the module docstring (and one that crashed emit) is plain data."""
    for name in ['q"""\\N{x.csv', 'x\\.csv', "a'''b.csv"]:
        program = emitted(tmp_path / name.replace("/", "_"), "clean", "spec.fed", name)
        assert_safe(program, clean)
        path = constants(program)
        assert any(isinstance(v, str) and v.endswith(name) for v in path.values()) or name.encode() in program


def test_cli_writes_the_checked_bytes(tmp_path, clean):
    """`emit -o` and `emit` to stdout write the same bytes, which compile as checked."""
    folder = tmp_path / "cookie"
    folder.mkdir()
    shutil.copy(TINY_CSV, folder / "tiny.csv")
    spec = folder / "coding: utf-7.fed"  # a spec file name is a cookie candidate too
    spec.write_text(spec_text("# coding: utf-7", "tiny.csv", "+AAo-import os+AAo-"), encoding="utf-8")
    out = folder / "program.py"
    to_file = CliRunner().invoke(main, ["emit", str(spec), "-o", str(out)])
    assert to_file.exit_code == 0, to_file.output
    to_stdout = CliRunner().invoke(main, ["emit", str(spec)])
    assert to_stdout.exit_code == 0
    assert out.read_bytes() == to_stdout.stdout_bytes
    assert_safe(out.read_bytes(), clean)


def test_encoders_refuse_what_they_cannot_make_safe():
    assert comment("a\nb\x1b\u2028") == "a?b??"
    assert literal(float("inf")) == "float('inf')" and literal(float("nan")) == "float('nan')"
    assert eval(literal(["x\n'\"\\", 1.5, None])) == ["x\n'\"\\", 1.5, None]  # noqa: S307 - our literal
    assert word("fedavg") == "fedavg" and word(0.5) == "0.5"
    for bad in ['a"""', "a b", "x\n"]:
        with pytest.raises(EmitError):
            word(bad)
    for bad in ["class", "a-b", "ä", "a.b"]:
        with pytest.raises(EmitError):
            identifier(bad)


def test_program_bytes_rejects_what_python_would_read_differently():
    body = 'x = 1  # +AAo-y = 2\n'
    with pytest.raises(EmitError):  # not fedlang's header: a cookie could sit on line 1-2
        program_bytes("# coding: utf-7\n" + body)
    with pytest.raises(EmitError):
        program_bytes(HEADER + "x = '\ud800'\n")  # not encodable as UTF-8
    assert program_bytes(HEADER + body) == (HEADER + body).encode()
