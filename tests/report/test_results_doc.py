"""docs/results.md is generated from the committed results/*/summary.json: it must match what the
generator makes of them now, and a new study folder must show up in it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from loraport.report.results import OUT, RESULTS, load_summaries, main, render_results


def test_docs_results_md_matches_the_committed_summaries():
    assert load_summaries(), "no results/*/summary.json found"
    assert OUT.read_text() == render_results(RESULTS), (
        "docs/results.md drifted from results/*/summary.json: run `python -m loraport.report.results`"
    )


def test_check_flag_fails_on_drift_and_a_new_study_gets_a_section(tmp_path: Path):
    results = tmp_path / "results"
    _, summary = load_summaries()[0]
    (results / "copy_of_it").mkdir(parents=True)
    (results / "copy_of_it" / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "results.md"
    assert main(["--results", str(results), "--out", str(out), "--check"]) == 1  # missing file
    assert main(["--results", str(results), "--out", str(out)]) == 0
    assert main(["--results", str(results), "--out", str(out), "--check"]) == 0
    assert "## copy_of_it" in out.read_text()
    shutil.copytree(results / "copy_of_it", results / "another")
    assert main(["--results", str(results), "--out", str(out), "--check"]) == 1
