"""report.md, summary.json and figures/ from a run's stored records alone (no torch).

from loraport.report import build_report
summary = build_report("runs/demo")      # also: `loraport report runs/demo`

The study's kind builds its report (bench.kinds.STUDY_KINDS: the port study's is
report/port_report.py, recipe_transfer's report/recipe_report.py, ...); this module only reads the
run and dispatches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loraport.bench.kinds import STUDY_KINDS
from loraport.report.port_report import port_report

__all__ = ["build_report", "port_report"]


def build_report(run_dir: str | Path) -> dict[str, Any]:
    """Rebuild report.md, summary.json and figures/ of a run folder from run.json and records/
    alone (no model, no torch); returns the summary. The study's kind (bench.kinds.STUDY_KINDS)
    builds its own report.

        summary = build_report("runs/demo")
        summary["best"]          # the best method variant at the largest N
    """
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    records = [json.loads(p.read_text()) for p in sorted((run_dir / "records").glob("*.json"))]
    return STUDY_KINDS.get(meta["study"].get("kind", "port")).report(run_dir, meta, records)
