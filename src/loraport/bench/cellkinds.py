"""How each kind of cell is computed: the registries bench.cells dispatches on.

A cell kind (a plan's `Cell.kind`) registers the function that computes one cell into the store
and its stage: the runner computes stage by stage, lowest first, so a cell may depend on cells of
any earlier stage. The core registers train (10), teach (20) and eval (90) in bench/cells.py; the
port study registers port (30), distill (40) and control (50) in bench/port_study.py. A study kind
with a cell kind of its own registers it from its own module:

    # bench/merge_study.py: a cell that merges two adapters
    def _merge(cell: Cell, store: Store) -> None:
        from loraport.adapters import merge_adapters  # heavy imports inside the function
        ...

    CELL_KINDS.add("merge", CellKind(_merge, stage=35))

An eval cell computed another way than `evaluate.evaluate` (on a quantized base; with a judge's
verdicts added) is still an eval cell, so its records and store paths are the eval cells'. Its
params carry one extra key, and the variant registered under that key computes it:

    EVAL_VARIANTS.add("quant", EvalVariant(evaluate=quantized))   # replaces the evaluation
    EVAL_VARIANTS.add("judge", EvalVariant(after=judged))         # amends the evaluation's result

This module imports nothing heavy: kind modules (which `loraport report` imports) register here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loraport.errors import LoraportError
from loraport.registry import Registry

if TYPE_CHECKING:
    from loraport.bench.plan import Cell
    from loraport.bench.store import Store
    from loraport.evaluate.run import EvalResult


@dataclass(frozen=True)
class CellKind:
    """run(cell, store): compute `cell` into the store (a LoraportError marks the cell failed).
    stage: the runner's order (lowest first); cells of one stage depend only on earlier stages.
    done(store, key): whether the store already holds the cell's output (None: an adapter folder,
    what train, port, distill and control cells write)."""

    run: Callable[[Cell, Store], None]
    stage: int
    done: Callable[[Store, str], bool] | None = None


@dataclass(frozen=True)
class EvalVariant:
    """An eval cell whose params carry this variant's key. evaluate(params, adapter) -> EvalResult
    replaces the plain evaluation; after(result, params) -> EvalResult amends its result. A cell
    may carry several keys, but only one that replaces the evaluation."""

    evaluate: Callable[[dict[str, Any], Any], EvalResult] | None = None
    after: Callable[[EvalResult, dict[str, Any]], EvalResult] | None = None


#: Cell kinds by name. A miss lists the valid names.
CELL_KINDS: Registry[CellKind] = Registry("cell kind", LoraportError)
#: Eval variants by the params key that selects them.
EVAL_VARIANTS: Registry[EvalVariant] = Registry("eval variant", LoraportError)


def load_cell_kinds() -> None:
    """Import every module that registers a cell kind or eval variant (the core's cells and every
    study kind's module), so the registries are complete in this process (a ray worker too)."""
    import loraport.bench.cells
    import loraport.bench.kinds  # noqa: F401  (imports every study kind, which register theirs)


def stages() -> tuple[str, ...]:
    """Every registered cell kind, in the order the runner computes them."""
    load_cell_kinds()
    return tuple(sorted(CELL_KINDS, key=lambda k: (CELL_KINDS.get(k).stage, k)))
