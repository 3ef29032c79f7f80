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


def test_a_study_of_another_kind_gets_its_kinds_section(tmp_path: Path):
    """A snapshots study's folder: its section names what ran (from run.json), X accuracy per
    snapshot, the ports of the earliest and latest snapshot, and its finding lines."""
    folder = tmp_path / "results" / "snaps"
    folder.mkdir(parents=True)
    study = {
        "name": "snaps", "kind": "snapshots", "source": "X", "target": "Y", "heldout": ["t1"],
        "methods": {"mean": {}}, "n_anchors": [4], "seeds": [0], "eval": {"n": 300},
        "snapshots": [1, 4], "anchor_snapshots": [4],
    }  # fmt: skip
    (folder / "run.json").write_text(
        json.dumps({"study": study, "device": "cpu", "torch": "2", "seconds": 9.5})
    )
    port = {"variant": "mean", "n_anchors": 4, "anchor_epoch": 4, "y": {"acc": 0.4, "ci": [0.35, 0.45]}}
    summary = {
        "kind": "snapshots", "study": "snaps", "missing": [], "fewstep": [], "contrasts": [],
        "x": [{"epoch": 1, "acc": 0.2, "ci": [0.1, 0.3]}, {"epoch": 4, "acc": 0.9, "ci": [0.85, 0.95]}],
        "ports": [
            {**port, "epoch": 1, "x_acc": 0.2, "gap_recovered": 0.25, "gap_ci": [0.1, 0.4]},
            {**port, "epoch": 4, "x_acc": 0.9, "gap_recovered": 0.5, "gap_ci": None},
        ],
        "findings": ["mean N=4: the later snapshot ports higher."],
    }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    text = render_results(tmp_path / "results")
    section = text[text.index("## snaps") :]
    assert "Snapshots study `snaps`: X (X) → Y (Y)" in section
    assert "Run on cpu (torch 2, 9.5 s wall)" in section
    assert "epoch 1 0.200 [0.100, 0.300], epoch 4 0.900 [0.850, 0.950]" in section
    assert "| mean | 4 | 1 | 4 | 0.200 | 0.400 [0.350, 0.450] | 0.250 [0.100, 0.400] |" in section
    assert "| mean | 4 | 4 | 4 | 0.900 | 0.400 [0.350, 0.450] | 0.500 |" in section
    assert "- mean N=4: the later snapshot ports higher." in section
    assert "## Overview" in text and "[snaps](#snaps)" not in text  # not in the port studies' table


def test_a_resumed_run_reports_its_summed_wall_time():
    from loraport.report.results import _wall

    assert _wall({"seconds": 12.0}) == "12.0 s wall"
    runs = [{"seconds": 100.0, "computed": {"train": 3}}, {"seconds": 2.5, "computed": {"train": 0}}]
    assert _wall({"seconds": 2.5, "runs": runs, "seconds_total": 102.5}) == (
        "102.5 s wall over 2 invocations, 1 of which computed cells"
    )


def test_the_wall_time_says_how_many_cells_came_from_the_cache():
    from loraport.report.results import _wall

    meta = {"seconds": 2329.4, "cells": {"train": 18, "eval": 60}, "computed": {"train": 0, "eval": 49}}
    meta["runs"] = [{"seconds": 2329.4, "computed": meta["computed"]}]
    assert _wall(meta) == (
        "2329.4 s wall, computing 49 of its 78 cells; the other 29 were already in its cache (from "
        "interrupted invocations, which run.json does not record, or from other studies), their times "
        "in the records"
    )
    meta["computed"] = meta["runs"][0]["computed"] = {"train": 18, "eval": 60}
    assert _wall(meta) == "2329.4 s wall"
