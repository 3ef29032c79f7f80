"""The snapshots study kind (bench/snapshot_study.py): bad epochs fail on load, the late snapshot
is the port study's own cell, findings only where CIs allow, and a tiny run end to end."""

from __future__ import annotations

import json

import pytest
import yaml

from loraport.bench import StudyError, load_study, run_study
from loraport.bench.fewstep_study import run_fewsteps
from loraport.bench.plan import make_plan
from loraport.report.snapshot_report import fewstep_findings, fewstep_section, findings

SPEC = {
    "name": "snap",
    "kind": "snapshots",
    "source": "tiny-qwen2-x",
    "target": "tiny-llama-y",
    "anchors": ["math_add", "sci_color"],
    "heldout": ["math_sum_more"],
    "methods": {"mean": {}},
    "n_anchors": [2],
    "recipe": {"rank": 2, "alpha": 4, "epochs": 2, "examples": 8, "batch": 8, "lr": 0.05},
    "snapshots": [1, 2],
    "anchor_snapshots": [1, 2],
    "eval": {"n": 12},
}
FP = {"tiny-qwen2-x": "fp-x", "tiny-llama-y": "fp-y"}


def _write(tmp_path, data):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"snapshots": [1, 3]}, r"snapshots: snapshot epoch 3 does not exist \(the recipe trains 2 epochs"),
        ({"anchor_snapshots": [0]}, r"anchor_snapshots: snapshot epoch 0 does not exist"),
        ({"snapshots": [2, 2]}, r"snapshots: epoch 2 is listed twice"),
        ({"snapshots": []}, r"snapshots: a snapshots study lists at least one epoch"),
        ({"kind": "port", "anchor_snapshots": []}, r"snapshots: only a snapshots study uses it"),
    ],
)
def test_bad_snapshots_are_one_line_errors(tmp_path, change, message):
    with pytest.raises(StudyError, match=message) as e:
        load_study(_write(tmp_path, {**SPEC, **change}))
    assert "\n" not in str(e.value)


def test_the_late_snapshot_ports_are_the_port_studys_cells(tmp_path):
    plan = make_plan(load_study(_write(tmp_path, SPEC)), FP)
    ports = {c.params["x"]: c for c in plan.by_kind("port")}
    assert len(plan.by_kind("port")) == 2 * 2  # X epochs × anchor epochs
    assert sum("/checkpoints/epoch-1" in x for x in ports) == 1  # the other X key is the train cell
    common = {k: v for k, v in SPEC.items() if k not in ("kind", "snapshots", "anchor_snapshots")}
    port_plan = make_plan(load_study(_write(tmp_path, common)), FP)
    assert {c.key for c in port_plan.by_kind("port")} < {c.key for c in plan.by_kind("port")}


def test_fewstep_arguments_are_checked_before_any_work(tmp_path):
    from loraport.train.fewstep import FewStepError

    for kw, msg in (
        ({"ks": (0,)}, "k must be"),
        ({"credits": ("vec",)}, "unknown credit"),
        ({"lrs": ()}, "empty"),
    ):
        with pytest.raises(FewStepError, match=msg):
            run_fewsteps(tmp_path / "no-such-run", **kw)


def _contrast(what, delta, ci, **kw):
    return {"what": what, "early": 1, "late": 4, "diff": {"delta": delta, "ci": ci, "items": 300}, **kw}


def test_findings_are_stated_only_where_the_ci_excludes_zero():
    g = {"variant": "mean", "n_anchors": 4, "at": 4}
    s = {
        "contrasts": [
            _contrast("x_acc", 0.2, [0.1, 0.3]),
            _contrast("port_by_x_epoch", -0.1, [-0.2, -0.05], **g),
            _contrast("port_by_anchor_epoch", 0.01, [-0.05, 0.07], **g),
        ]
    }
    lines = findings(s)
    assert (
        "X accuracy is higher late but the port is lower: better on X does not mean ports better"
        in lines[0]
    )
    assert lines[1].endswith("not distinguishable.")
    row = {
        "k": 5,
        "lr": 0.1,
        "d_train": -0.1,
        "d_heldout": -0.05,
        "cosine": 1.0,
        "acc_before": 0.2,
        "acc_after": 0.3,
    }
    rows = [
        {
            **row,
            "credit": "backprop",
            "epoch": 5,
            "pur": 0.7,
            "d_heldout_ci": [-0.1, -0.01],
            "variance": {"relative": 0.1},
        },
        {
            **row,
            "credit": "backprop",
            "epoch": 100,
            "pur": -1.0,
            "d_heldout_ci": [-0.05, 0.02],
            "variance": {"relative": 0.2},
        },
    ]
    few = fewstep_findings(rows)
    assert "the held-out window closes" in few[0] and len(few) == 1  # one credit: no variance line
    dfa = {
        **rows[0],
        "credit": "dfa",
        "cosine": 0.1,
        "variance": {"relative": 0.5, "relative_ci": [0.4, 0.6]},
    }
    bp = {**rows[0], "variance": {"relative": 0.1, "relative_ci": [0.05, 0.2]}}
    assert fewstep_findings([bp, dfa])[-1].endswith("better credit comes with lower update variance.")
    dfa["variance"]["relative_ci"] = [0.15, 0.6]
    assert fewstep_findings([bp, dfa])[-1].endswith("the ordering is not distinguishable.")
    assert "| 5 | backprop | 5 |" in fewstep_section(rows)


def test_a_tiny_snapshots_study_runs_end_to_end_and_reuses_its_cells(mini_zoo, tmp_path, capsys):
    spec = {**SPEC, "source": str(mini_zoo["x"]), "target": str(mini_zoo["y"])}
    run = tmp_path / "run"
    study = load_study(_write(tmp_path, spec))
    summary = run_study(study, run, threads=1, progress=False, log=lambda s: None)
    assert summary["kind"] == "snapshots" and not summary["missing"]
    assert [r["epoch"] for r in summary["x"]] == [1, 2]
    assert all(r["items"] == 12 and 0 <= r["acc"] <= 1 for r in summary["x"])
    rows = {(r["epoch"], r["anchor_epoch"]): r for r in summary["ports"]}
    assert set(rows) == {(1, 1), (1, 2), (2, 1), (2, 2)}
    for r in rows.values():
        assert r["y"]["items"] == 12 and r["x_acc"] is not None
    assert {c["what"] for c in summary["contrasts"]} == {"x_acc", "port_by_x_epoch", "port_by_anchor_epoch"}
    report = (run / "report.md").read_text()
    for section in ("## X snapshots on X", "## Ports of each snapshot to Y", "## Findings"):
        assert section in report
    assert json.loads((run / "summary.json").read_text())["findings"] == summary["findings"]
    assert (run / "figures" / "snapshots.png").stat().st_size > 0 and "figures/snapshots.png" in report
    # few-step updates from each snapshot's port and from Y's own snapshot, into the same report
    credits = ("backprop", "dfa", "transfer")
    rows = run_fewsteps(
        run, credits=credits, ks=(1,), lrs=(0.01, 0.1), batches=2, batch_size=4, heldout_n=6, threads=1
    )
    assert len(rows) == 2 * 2 * 3  # starts (port, y_snapshot) × epochs × credits
    assert {r["start"] for r in rows} == {"port mean N=2", "y_snapshot"}
    assert all(-1 <= r["cosine"] <= 1 and r["lr"] in (0.01, 0.1) for r in rows)
    assert "## Few-step updates" in (run / "report.md").read_text()
    assert (run / "figures" / "fewstep.png").stat().st_size > 0
    assert "figures/fewstep.png" in (run / "report.md").read_text()
    assert "fewstep 4/4 " in capsys.readouterr().err  # one progress line per start, for logs
    # a second run computes nothing: every cell, snapshots included, comes from the store
    run_study(study, run, threads=1, progress=False, log=lambda s: None)
    assert not any(json.loads((run / "run.json").read_text())["computed"].values())
