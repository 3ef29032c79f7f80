"""Port studies: a YAML spec → a plan of cells → executors → one record per condition → metrics.

from loraport.bench import load_study, run_study
run_study(load_study("studies/demo.yaml"), "runs/demo")

The names below are imported on first use (PEP 562), so `loraport.bench.metrics` (which the report
reads) loads without the runner, the spec's training recipe, or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loraport.bench.executors import EXECUTORS
    from loraport.bench.runner import plan_study, run_study
    from loraport.bench.spec import Study, StudyError, load_study

_LAZY = {
    "EXECUTORS": "loraport.bench.executors",
    "plan_study": "loraport.bench.runner",
    "run_study": "loraport.bench.runner",
    "Study": "loraport.bench.spec",
    "StudyError": "loraport.bench.spec",
    "load_study": "loraport.bench.spec",
}

__all__ = ["EXECUTORS", "Study", "StudyError", "load_study", "plan_study", "run_study"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'loraport.bench' has no attribute {name!r}")
