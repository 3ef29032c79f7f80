"""The tiers study kind (bench/tiers_study.py): the tier axis plans the right cells, bad specs are
one-line errors, shape lines only where step CIs allow, pre-Δ/post-Δ/lift on constructed records,
and a tiny run end to end on the mini zoo (with a mini build of a second llama tier)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from loraport.bench import StudyError, load_study, run_study
from loraport.bench.plan import make_plan
from loraport.bench.tiers_metrics import index, procedure_rows, shape, shape_of
from loraport.report.tiers_report import agreement_section

TIERS = ["tiny-llama-s", "tiny-llama-y", "tiny-llama-l"]
SPEC = {
    "name": "tiers",
    "kind": "tiers",
    "source": "tiny-qwen2-x",
    "target": "tiny-llama-y",
    "tiers": TIERS,
    "heldout": ["math_proc_add_sub"],
    "anchors": ["math_add", "math_sub"],
    "methods": {"mean": {}},
    "n_anchors": [2],
    "eval": {"n": 12},
}
FP = {"tiny-qwen2-x": "fp-x", **{t: f"fp-{t}" for t in TIERS}}


def _write(tmp_path, data):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_the_tier_axis_plans_base_oracle_and_ports_per_tier(tmp_path):
    plan = make_plan(load_study(_write(tmp_path, SPEC)), FP)
    trains = plan.by_kind("train")
    oracles = [c for c in trains if c.params["task"] == "math_proc_add_sub@procedure"]
    assert sorted(c.params["base"] for c in oracles) == sorted([*TIERS, "tiny-qwen2-x"])  # + X's
    # anchors on X once, on every tier
    anchors = [c for c in trains if c.params["task"] in ("math_add", "math_sub")]
    assert len(anchors) == 2 * (1 + len(TIERS))
    assert {c.params["target"] for c in plan.by_kind("port")} == set(TIERS)
    conds = plan.conditions
    assert len(conds) == len(TIERS) * (4 + 1)  # base/sft × plain/procedure, one port
    for i, tier in enumerate(TIERS):
        base = conds[f"math_proc_add_sub__tier{i}__base__plain"]
        proc = conds[f"math_proc_add_sub__tier{i}__sft__procedure"]
        assert plan.cells[base["eval"]].params["base"] == tier and base["tier"] == tier
        assert plan.cells[base["eval"]].params["task"] == "math_proc_add_sub"
        assert plan.cells[proc["eval"]].params["task"] == "math_proc_add_sub@procedure"
        assert proc["train"] in plan.cells and plan.cells[proc["train"]].params["base"] == tier
    # the oracle of a tier is the train cell a port study with that target trains for the task
    port = {k: SPEC[k] for k in ("name", "source", "anchors", "methods", "n_anchors", "eval")}
    port_plan = make_plan(
        load_study(_write(tmp_path, {**port, "target": "tiny-llama-l", "heldout": ["math_sum_more"]})), FP
    )
    assert {c.key for c in port_plan.by_kind("train") if c.params["task"] == "math_add"} <= {
        c.key for c in anchors
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"tiers": ["tiny-llama-y"]},
            r"tiers: a tiers study compares at least two capacity tiers \(got only",
        ),
        ({"tiers": ["tiny-llama-y", "tiny-llama-y"]}, r"tiers: 'tiny-llama-y' is listed twice"),
        ({"target": "tiny-qwen2-x"}, r"target: 'tiny-qwen2-x' is not one of the tiers"),
        ({"heldout": ["math_sum_more"]}, r"heldout: task 'math_sum_more' carries no procedure block"),
        ({"anchors": []}, r"methods: porting to each tier needs anchors"),
        ({"kind": "port"}, r"tiers: only a recipe_transfer or tiers study uses it"),
        ({"judge": {"model": "no-such-judge"}}, r"judge.model: unknown judge model: 'no-such-judge'"),
        ({"judge": {"model": "tiny-llama-y", "nn": 3}}, r"judge.nn: unknown field 'nn' \(did you mean 'n'"),
        (
            {"judge": [{"model": "tiny-llama-y"}, {"model": "tiny-llama-y", "n": 5}]},
            r"judge: 'tiny-llama-y' is listed twice",
        ),
        (
            {"kind": "port", "tiers": [], "judge": {"model": "tiny-llama-y"}},
            r"judge: only a tiers study uses it",
        ),
    ],
)
def test_bad_specs_are_one_line_errors(tmp_path, change, message):
    with pytest.raises(StudyError, match=message) as e:
        load_study(_write(tmp_path, {**SPEC, **change}))
    assert "\n" not in str(e.value)


def _d(delta: float, lo: float, hi: float) -> dict:
    return {"delta": delta, "ci": [lo, hi], "items": 100}


UP, DOWN, FLAT = _d(0.1, 0.05, 0.15), _d(-0.1, -0.15, -0.05), _d(0.1, -0.02, 0.2)


@pytest.mark.parametrize(
    ("steps", "want"),
    [
        ([FLAT, FLAT], "not distinguishable"),
        ([None, FLAT], "not distinguishable"),
        ([UP, UP], "monotone increasing"),
        ([UP, FLAT], "monotone increasing"),  # a flat step does not break monotonicity
        ([DOWN, DOWN], "monotone decreasing"),
        ([DOWN, UP], "U-shaped"),
        ([UP, DOWN], "inverted U"),
        ([DOWN, FLAT, UP], "U-shaped"),
        ([DOWN, UP, DOWN], "W-shaped"),
        ([UP, DOWN, UP], "W-shaped"),  # the seed's pre-SFT steps over four sizes (two turns)
    ],
)
def test_shape_is_claimed_only_from_steps_whose_ci_excludes_zero(steps, want):
    got = shape(steps)
    assert got["shape"] == want
    assert len(got["signs"]) == len(steps)


def _rec(tier: str, stage: str, prompt: str, correct, task: str = "t") -> dict:
    suffix = "@procedure" if prompt == "procedure" else ""
    ids = [f"{task}{suffix}/eval/i{k:03d}" for k in range(len(correct))]
    return {
        "name": f"{task}__{tier}__{stage}__{prompt}",
        "task": task,
        "tier": tier,
        "stage": stage,
        "prompt": prompt,
        "primary": "numeric_flexible",
        "scorers": {"numeric_flexible": {"ids": ids, "correct": list(map(int, correct)), "invalid": []}},
    }


def _tier(tier: str, rates: dict[tuple[str, str], float], n: int = 400) -> list[dict]:
    """Records of one tier whose accuracies are exactly `rates` (the same items correct first)."""
    return [
        _rec(tier, stage, prompt, np.arange(n) < round(rate * n)) for (stage, prompt), rate in rates.items()
    ]


def test_pre_post_lift_and_a_w_shape_on_constructed_records():
    # pre-Δ −0.15, +0.15, −0.15, +0.15 over four tiers (a W); post-Δ +0.10 everywhere
    records = []
    tiers = ["a", "b", "c", "d"]
    for i, tier in enumerate(tiers):
        pre = -0.15 if i % 2 == 0 else 0.15
        records += _tier(
            tier,
            {
                ("base", "plain"): 0.4,
                ("base", "procedure"): 0.4 + pre,
                ("sft", "plain"): 0.5,
                ("sft", "procedure"): 0.6,
            },
        )
    idx = index(records)
    rows = {r["tier"]: r for r in procedure_rows(idx, tiers)}
    assert rows["a"]["pre"]["delta"] == pytest.approx(-0.15)
    assert rows["b"]["pre"]["delta"] == pytest.approx(0.15)
    assert rows["a"]["post"]["delta"] == pytest.approx(0.10)
    assert rows["a"]["lift"]["delta"] == pytest.approx(0.25)
    assert rows["b"]["lift"]["delta"] == pytest.approx(-0.05)
    lo, hi = rows["a"]["pre"]["ci"]
    assert lo < -0.15 < hi < 0
    assert shape_of(idx, tiers, "pre")["shape"] == "W-shaped"
    assert shape_of(idx, tiers, "post")["shape"] == "not distinguishable"  # identical steps: CI [0, 0]
    assert shape_of(idx, tiers, "lift")["shape"] == "W-shaped"


def test_a_tiny_tiers_study_runs_end_to_end(mini_zoo, tmp_path, monkeypatch):
    from loraport.zoo import get_spec
    from loraport.zoo.build import build

    monkeypatch.setenv("LORAPORT_CACHE", str(tmp_path / "zoo"))
    small = get_spec("tiny-llama-s").with_overrides(steps=4).model_copy(update={"corpus_lines": 1500})
    s_dir = build(small, progress=False)
    tiers = [str(s_dir), str(mini_zoo["y"])]
    spec = {
        **SPEC,
        "source": str(mini_zoo["x"]),
        "target": str(mini_zoo["y"]),
        "tiers": tiers,
        "recipe": {"rank": 2, "alpha": 4, "epochs": 1, "examples": 8, "batch": 8, "lr": 0.05},
        "judge": {"model": str(mini_zoo["y"]), "n": 4, "max_new_tokens": 4},  # any loadable base judges
    }
    run = tmp_path / "run"
    summary = run_study(
        load_study(_write(tmp_path, spec)), run, threads=1, progress=False, log=lambda s: None
    )
    assert summary["kind"] == "tiers" and not summary["missing"]
    assert [r["tier"] for r in summary["procedure"]] == tiers
    for r in summary["procedure"]:
        for what in ("pre", "post", "lift"):
            assert r[what]["items"] == 12
    assert {s["of"] for s in summary["shapes"]} == {"pre", "post", "lift", "port accuracy mean"}
    assert all(s["shape"] for s in summary["shapes"])
    assert [(r["variant"], r["tier"]) for r in summary["ports"]] == [("mean", t) for t in tiers]
    judge = f"judge:{mini_zoo['y'].name}"
    pairs = {(ag["a"], ag["b"]): ag for ag in summary["agreement"]}
    assert set(pairs) == {
        ("numeric_strict", "numeric_flexible"),
        ("numeric_flexible", judge),
        ("numeric_strict", judge),
    }
    for (_, b), ag in pairs.items():
        assert len(ag["groups"]) == len(tiers) * 5 and len(ag["headline"]["contrasts"]) == len(tiers) * 2
        assert all(g["n"] == (4 if b == judge else 12) for g in ag["groups"].values())
    threats = " ".join(summary["threats"])
    for needle in ("Single training seed", "Judge strength", "first 4 items", "n per cell: 12 eval items"):
        assert needle in threats
    report = (run / "report.md").read_text()
    for section in (
        "## Procedure prompts before and after SFT",
        "## Shape across tiers",
        "## Port quality per tier",
        "## Scorer agreement: numeric_strict (A) vs numeric_flexible (B)",
        f"## Scorer agreement: numeric_strict (A) vs {judge} (B)",
        "## Threats",
    ):
        assert section in report
    assert (run / "figures" / "tiers.png").stat().st_size > 0 and "figures/tiers.png" in report
    assert json.loads((run / "summary.json").read_text())["threats"] == summary["threats"]
    from loraport.report import build_report

    assert build_report(run)["threats"] == summary["threats"]  # rebuilt from the records alone


def test_a_second_judge_is_planned_in_the_same_cells_and_compared_with_the_first(tmp_path):
    """judge: a list plans one judged eval per cell carrying every judge (one judge keeps its old
    key), and the report compares each extractor with each judge and the two judges with each other
    on the items both judged."""
    one = {**SPEC, "judge": {"model": "tiny-llama-y", "n": 3}}
    two = {**SPEC, "judge": [{"model": "tiny-llama-y", "n": 3}, {"model": "tiny-llama-s", "n": 2}]}
    p1 = make_plan(load_study(_write(tmp_path, one)), FP)
    p2 = make_plan(load_study(_write(tmp_path, two)), FP)
    e1, e2 = p1.by_kind("eval"), p2.by_kind("eval")
    assert len(e1) == len(e2) and not {c.key for c in e1} & {c.key for c in e2}
    assert all([j["model"] for j in c.params["judge"]] == ["tiny-llama-y", "tiny-llama-s"] for c in e2)
    assert all(c.params["judge"]["model"] == "tiny-llama-y" for c in e1)

    def col(ids, correct):
        return {"ids": ids, "correct": correct, "invalid": [0] * len(ids)}

    ids = ["a", "b", "c", "d"]
    records = [
        {
            "name": f"t__{prompt}", "tier": "tiny-llama-y", "stage": "base", "prompt": prompt, "primary": "numeric_strict",
            "scorers": {
                "numeric_strict": col(ids, [1, 0, 1, 0]),
                "judge:one": col(ids[:3], [1, 0, 0]),
                "judge:two": col(ids[:2], [1, 1]),
            },
        }
        for prompt in ("plain", "procedure")
    ]  # fmt: skip
    pairs = {(ag["a"], ag["b"]): ag for ag in agreement_section(records, ["tiny-llama-y"])}
    assert set(pairs) == {
        ("numeric_strict", "judge:one"),
        ("numeric_strict", "judge:two"),
        ("judge:one", "judge:two"),
    }
    g = pairs[("judge:one", "judge:two")]["groups"]["tiny-llama-y · base · plain"]
    assert (g["n"], g["both"], g["b_only"], g["observed"]) == (2, 1, 1, 0.5)  # items a and b only
    assert pairs[("numeric_strict", "judge:one")]["groups"]["tiny-llama-y · base · plain"]["n"] == 3
