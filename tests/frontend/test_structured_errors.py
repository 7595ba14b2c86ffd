"""The checker never reads the wording of a message: loaders, splits and type rules say what is
wrong in fields (kind, name, code, hint), and the checker decides from those."""

import numpy as np
import pytest

from fedlang.check.steps import OPERATORS, RuleError
from fedlang.checked import FedType
from fedlang.lib import data as datalib


def test_csv_loader_names_the_column_that_is_not_a_number(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,city,label\n1,Paris,0\n")
    with pytest.raises(datalib.DataError) as error:
        datalib.checked_load_csv(str(path))
    assert (error.value.kind, error.value.name, error.value.names) == ("not_a_number", "city", ("a", "city", "label"))


def test_csv_loader_reports_a_missing_and_a_repeated_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(datalib.DataError) as error:
        datalib.checked_load_csv(str(path), label="target")
    assert (error.value.kind, error.value.name) == ("missing_column", "target")
    path.write_text("a,a,label\n1,2,0\n")
    with pytest.raises(datalib.DataError) as error:
        datalib.checked_load_csv(str(path))
    assert (error.value.kind, error.value.name) == ("repeated_column", "a")


def test_npz_loader_lists_the_arrays_it_has(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, features=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(datalib.DataError) as error:
        datalib.checked_load_npz(str(path))
    assert (error.value.kind, error.value.name, set(error.value.names)) == ("missing_array", "x", {"features", "y"})


def test_a_split_that_cannot_work_carries_its_hint_apart_from_its_message():
    labels = np.repeat(np.arange(10), 10)
    with pytest.raises(datalib.DataError) as error:
        datalib.checked_partition_dirichlet(labels, 50, alpha=0.01, rng=np.random.default_rng(0), min_examples=2)
    e = error.value
    assert e.kind == "draws_exhausted" and e.hint == "use fewer clients, a larger alpha or a smaller min_examples"
    assert e.hint not in e.message and str(e) == f"partition_dirichlet: {e.message}; {e.hint}"


def test_type_rules_return_their_error_code():
    at_server, at_clients = FedType(("*",), "SERVER"), FedType(("*",), "CLIENTS")
    mean_of_server = OPERATORS["mean"].rule([at_server], ["w"])
    assert isinstance(mean_of_server, RuleError) and mean_of_server.code == "E902" and mean_of_server.hint
    across = OPERATORS["add"].rule([at_clients, at_server], ["u", "w"])
    assert isinstance(across, RuleError) and across.code == "E901"
    broadcast_from_clients = OPERATORS["broadcast"].rule([at_clients], ["u"])
    assert isinstance(broadcast_from_clients, RuleError) and broadcast_from_clients.code == "E903"
    assert OPERATORS["mean"].rule([at_clients], ["u"]) == FedType(("*",), "SERVER")
