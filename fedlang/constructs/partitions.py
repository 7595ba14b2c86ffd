"""Partitions: one `PartitionDef` per `partition` form, with every hook the compiler needs.

- `form`: the keyword and its options;
- `split(choice)`: the fedlang/lib/data.py call that deals the training examples into clients,
  with `y`, `client_ids` and `rng` as references. The emitted `load_data()` writes this call and
  `check` evaluates the same call on the replayed labels (fedlang/check/clients.py): one
  definition of the split, used twice;
- `examples_needed(choice)`: the fewest training examples the split can work with, what they
  are counted as and how to need fewer (None: any number);
- `needs_client_ids`: the split reads the source's client ids (the source must have them).

`holdout(test, streamed)` is the statement before the split (the central test set's hold-out) and
`client_tests(test)` the one after it (each client's own test set).

The lib function a split calls is copied into the program (its name is the call's function).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..checked import Choice
from ..forms import Form, Param, forms
from ..plan import HoldOut, PyCall, PyRef

# Upper bound of client counts (issue 8): far above any simulation, far below int64, and each one a
# size the checker can replay (fedlang/check/clients.py) and TFF can run.
MAX_CLIENTS = 10_000_000


@dataclass(frozen=True)
class PartitionDef:
    form: Form
    split: Callable[[Choice], PyCall]
    examples_needed: Callable[[Choice], tuple[int, str, str] | None]  # (count, what is counted, hint) or None
    needs_client_ids: bool = False

    @property
    def name(self) -> str:
        return self.form.name


_CLIENTS = Param("clients", "int", low=1, high=MAX_CLIENTS, doc="number of clients")
_Y, _RNG = PyRef("y"), PyRef("rng")

PARTITION_DEFS: tuple[PartitionDef, ...] = (
    PartitionDef(
        Form("iid", (_CLIENTS,), doc="uniformly random, equal-sized clients", example="partition iid(clients = 10)"),
        split=lambda c: PyCall.of("partition_iid", PyCall.of("len", _Y), c["clients"], _RNG),
        examples_needed=lambda c: (c["clients"], "clients", "use fewer clients")),
    PartitionDef(
        # alpha >= 0.001: numpy's Dirichlet draw takes time ~1/alpha (0.2 s at 1e-7, endless at 1e-9).
        Form("dirichlet", (Param("alpha", "float", low=0.001, high=1e6,
                                 doc="concentration; small (0.1) = strong label skew, large (100) = nearly iid"),
                           _CLIENTS,
                           Param("min_examples", "int", default=1, low=1, high=MAX_CLIENTS,
                                 doc="fewest examples any client gets")),
             doc="label skew: class proportions per client drawn from Dir(alpha)",
             example="partition dirichlet(alpha = 0.5, clients = 100)"),
        split=lambda c: PyCall.of("partition_dirichlet", _Y, c["clients"], alpha=c["alpha"], rng=_RNG,
                                  min_examples=c["min_examples"]),
        examples_needed=lambda c: (c["clients"], "clients", "use fewer clients")),
    PartitionDef(
        Form("shards", (_CLIENTS, Param("per_client", "int", default=2, low=1, high=10_000, doc="shards per client")),
             doc="McMahan et al.'s pathological split: sorted by label, k shards per client",
             example="partition shards(clients = 100, per_client = 2)"),
        split=lambda c: PyCall.of("partition_shards", _Y, c["clients"], shards_per_client=c["per_client"], rng=_RNG),
        examples_needed=lambda c: (c["clients"] * c["per_client"], "shards",
                                   "use fewer clients or fewer shards per client")),
    PartitionDef(
        Form("natural", (Param("first", "int", default=None, low=1,
                               doc="keep only the first N clients (in the order of their ids or files)"),),
             doc="one client per client id of the source", example="partition natural(first = 100)"),
        split=lambda c: PyCall.of("partition_natural", PyRef("client_ids")),
        examples_needed=lambda c: None, needs_client_ids=True),
)

PARTITION_BY_NAME: dict[str, PartitionDef] = {d.name: d for d in PARTITION_DEFS}


def holdout(test: Choice, streamed: bool) -> HoldOut | None:
    """The central hold-out a `test` setting makes, before the partition: `holdout(f)`, or
    `per_client(…, holdout = f)` with f > 0 (None: `split`, `none`, or no central hold-out). A
    streamed source holds out each file's tail; the others a random share of all examples.
    lower.py writes it into load_data() and check's replay evaluates the same call."""
    fraction = test["fraction"] if test.name == "holdout" else (
        test["holdout"] if test.name == "per_client" and test["holdout"] > 0 else None)
    return HoldOut(fraction, per_file=streamed) if fraction is not None else None


def client_tests(test: Choice) -> PyCall | None:
    """`test per_client(f, …)`: the statement after the split that keeps a random f of each client's
    examples as its own test set (`parts, test_parts = split_client_tests(parts, f, rng)`), written
    by lower.py and evaluated by check's replay. None without per-client test sets."""
    if test.name != "per_client":
        return None
    return PyCall.of("split_client_tests", PyRef("parts"), test["fraction"], _RNG)
PARTITIONS = forms(*(d.form for d in PARTITION_DEFS))
