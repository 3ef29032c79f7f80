"""The recipe_transfer study kind (bench/recipe_study.py): its spec fields, its sign-change
detection on constructed records, and a tiny version run end to end on the mini zoo."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from loraport.bench import StudyError, load_study, run_study
from loraport.bench.plan import make_plan
from loraport.bench.recipe_metrics import deltas, index, paired_diff, sign_change

SPEC = {
    "name": "rt",
    "kind": "recipe_transfer",
    "source": "tiny-qwen2-x",
    "target": "tiny-llama-y",
    "heldout": ["math_sum_more"],
    "regularizers": {"l2_delta": None, "fake_quant": 0.5},
    "schemes": ["int8_sym_row", "awq_lite"],
    "seeds": [0, 1],
}


def _write(tmp_path, data):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_plan_trains_every_recipe_on_both_bases_and_quantizes_only_y(tmp_path):
    study = load_study(_write(tmp_path, SPEC))
    plan = make_plan(study, {study.source: "fp-x", study.target: "fp-y"})
    trains = plan.by_kind("train")
    assert len(trains) == 3 * 2 * 2  # (none + 2 regularizers) × 2 bases × 2 seeds
    regs = {(c.params["recipe"].get("regularizer"), c.params["recipe"].get("strength")) for c in trains}
    assert regs == {(None, None), ("l2_delta", 0.1), ("fake_quant", 0.5)}  # a null strength: the default
    quant = [c for c in plan.by_kind("eval") if c.params.get("quant")]
    assert {c.params["base"] for c in quant} == {"tiny-llama-y"}
    assert len(quant) == 2 * (1 + 3 * 2)  # per scheme: the base alone and every Y adapter
    assert all("calibration" in c.params["quant"] for c in quant if c.params["quant"]["scheme"] == "awq_lite")
    assert not any(
        "calibration" in c.params["quant"] for c in quant if c.params["quant"]["scheme"] != "awq_lite"
    )
    # "none" at the recipe's own seed is the port study's train cell (same key)
    common = {k: SPEC[k] for k in ("name", "source", "target", "heldout")}
    port = load_study(_write(tmp_path, {**common, "anchors": ["math_add"], "n_anchors": [1], "methods": {}}))
    port_train = make_plan(port, {study.source: "fp-x", study.target: "fp-y"}).by_kind("train")
    held = {c.key for c in port_train if c.params["task"] == "math_sum_more"}
    assert len(held) == 2 and held <= {c.key for c in trains}
    assert "regularizers" not in port.to_yaml() and "schemes" not in port.to_yaml()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"regularizers": {"l2_delt": None}}, r"regularizers: .*'l2_delt'.*did you mean 'l2_delta'"),
        (
            {"regularizers": {"fake_quant": 2.0}},
            r"regularizers: strength 2 is out of range for regularizer 'fake_quant'",
        ),
        ({"regularizers": {"none": None}}, r"regularizers: 'none' is always the reference"),
        ({"regularizers": {}}, r"regularizers: a recipe_transfer study names at least one regularizer"),
        ({"schemes": ["int4_sym_rows"]}, r"schemes: .*'int4_sym_rows'.*did you mean 'int4_sym_row'"),
        ({"schemes": ["awq_lite", "awq_lite"]}, r"schemes: 'awq_lite' is listed twice"),
        ({"kind": "port", "methods": {"mean": {}}}, r"regularizers: only a recipe_transfer study uses it"),
        ({"recipe": {"regularizer": "l2_delta"}}, r"recipe.regularizer: a recipe_transfer study names"),
        ({"methods": {"mean": {}}}, r"methods: porting each recipe's adapter needs anchors"),
        ({"tiers": ["tiny-llama-y"]}, r"tiers: list at least two capacity tiers"),
        ({"tiers": ["tiny-llama-s", "tiny-llama-s"]}, r"tiers: 'tiny-llama-s' is listed twice"),
        ({"tiers": ["tiny-llama-s", "tiny-llama-l"]}, r"tiers: the target 'tiny-llama-y' is not one of them"),
        ({"tiers": ["tiny-qwen2-x", "tiny-llama-y"]}, r"tiers: the source 'tiny-qwen2-x' is X, not a tier"),
    ],
)
def test_bad_fields_are_one_line_errors_naming_the_field(tmp_path, change, message):
    with pytest.raises(StudyError, match=message) as e:
        load_study(_write(tmp_path, {**SPEC, **change}))
    assert "\n" not in str(e.value)


def test_tiers_train_and_score_every_recipe_on_each_other_tier(tmp_path):
    study = load_study(_write(tmp_path, {**SPEC, "tiers": ["tiny-llama-s", "tiny-llama-y"]}))
    assert study.bases() == ("tiny-qwen2-x", "tiny-llama-y", "tiny-llama-s")
    fps = {study.source: "fp-x", study.target: "fp-y", "tiny-llama-s": "fp-s"}
    plan = make_plan(study, fps)
    on_tier = [c for c in plan.by_kind("train") if c.params["base"] == "tiny-llama-s"]
    assert len(on_tier) == 3 * 2  # none + 2 regularizers, 2 seeds
    cond = plan.conditions["math_sum_more__fake_quant__s1__tier0"]
    assert (cond["side"], cond["tier"], cond["scheme"], cond["regularizer"]) == (
        "tier0",
        "tiny-llama-s",
        None,
        "fake_quant",
    )
    assert plan.cells[cond["train"]].params["recipe"]["seed"] == 1
    assert plan.cells[cond["eval"]].params["base"] == "tiny-llama-s"
    base = plan.conditions["math_sum_more__base_tier0"]
    assert base["condition"] == "base" and plan.cells[base["eval"]].params["adapter"] is None
    quant = [c for c in plan.by_kind("eval") if c.params.get("quant")]
    assert {c.params["base"] for c in quant} == {"tiny-llama-y"}  # tiers are not quantized
    # "none" at the recipe's seed on a tier is the cell a port study with that target trains
    common = {k: SPEC[k] for k in ("name", "source", "heldout")}
    port_spec = {**common, "target": "tiny-llama-s", "anchors": ["math_add"], "n_anchors": [1], "methods": {}}
    port = load_study(_write(tmp_path, port_spec))
    held = {c.key for c in make_plan(port, fps).by_kind("train") if c.params["task"] == "math_sum_more"}
    assert held & {c.key for c in on_tier}
    without = make_plan(load_study(_write(tmp_path, SPEC)), fps)
    assert set(without.cells) < set(plan.cells)  # tiers only add cells


def _record(reg: str, side: str, correct: list[int], seed: int = 0) -> dict:
    ids = [f"i{k:03d}" for k in range(len(correct))]
    return {
        "name": f"t__{reg}__s{seed}__{side}",
        "task": "t",
        "condition": "adapter",
        "regularizer": reg,
        "side": side,
        "scheme": None,
        "seed": seed,
        "primary": "exact",
        "scorers": {"exact": {"ids": ids, "correct": correct, "invalid": [0] * len(correct)}},
    }


def test_a_true_sign_change_is_flagged_and_one_inside_the_cis_is_not():
    rng = np.random.default_rng(0)
    n = 400
    none_x, none_y = rng.random(n) < 0.5, rng.random(n) < 0.5
    # "flip" helps X (+0.3 of the items flip to right) and hurts Y (0.3 flip to wrong)
    flip = rng.random(n) < 0.3
    recs = [
        _record("none", "x", none_x.astype(int).tolist()),
        _record("none", "y", none_y.astype(int).tolist()),
        _record("flip", "x", (none_x | flip).astype(int).tolist()),
        _record("flip", "y", (none_y & ~flip).astype(int).tolist()),
        # "faint" changes 2 items one way on X and 2 the other way on Y: opposite signs, inside the CIs
        _record("faint", "x", np.where(np.arange(n) < 2, 1, none_x).astype(int).tolist()),
        _record("faint", "y", np.where(np.arange(n) < 2, 0, none_y).astype(int).tolist()),
    ]
    rows = {r["regularizer"]: r for r in deltas(index(recs))}
    flip_row = rows["flip"]
    assert flip_row["verdict"] == "sign change"
    assert flip_row["x"]["delta"] > 0.1 and flip_row["y"]["delta"] < -0.1
    assert flip_row["swing"] == pytest.approx(flip_row["y"]["delta"] - flip_row["x"]["delta"])
    faint = rows["faint"]
    assert faint["x"]["delta"] >= 0 >= faint["y"]["delta"]
    assert faint["verdict"] == "not distinguishable"

    # the verdict itself, on hand-made CIs
    pos, neg = {"delta": 0.2, "ci": [0.1, 0.3]}, {"delta": -0.2, "ci": [-0.3, -0.1]}
    wide = {"delta": -0.2, "ci": [-0.5, 0.1]}
    assert sign_change(pos, neg)["verdict"] == "sign change"
    assert sign_change(pos, neg)["swing"] == pytest.approx(-0.4)
    assert sign_change(pos, pos)["verdict"] == "same sign"
    assert sign_change(pos, wide) | {"swing": None} == {
        "verdict": "not distinguishable",
        "swing": None,
        "why": "the CI on Y includes zero",
    }


def test_a_sign_change_between_y_and_a_tier_is_reported_with_the_tier_name(tmp_path):
    from loraport.report.recipe_report import recipe_report

    rng = np.random.default_rng(3)
    n = 400
    none = {s: rng.random(n) < 0.5 for s in ("x", "y", "tier0")}
    flip = rng.random(n) < 0.3
    recs = [_record("none", s, c.astype(int).tolist()) for s, c in none.items()]
    recs += [
        _record("flip", "x", none["x"].astype(int).tolist()),  # no effect on X
        _record("flip", "y", (none["y"] | flip).astype(int).tolist()),  # helps Y
        _record("flip", "tier0", (none["tier0"] & ~flip).astype(int).tolist()),  # hurts the tier
    ]
    (row,) = deltas(index(recs))
    assert row["verdict"] == "not distinguishable" and row["why"] == "the CI on X includes zero"
    across = {(a["a"], a["b"]): a for a in row["across_tiers"]}
    assert across[("y", "tier0")]["verdict"] == "sign change"
    assert across[("y", "tier0")]["swing"] < -0.2
    assert across[("x", "tier0")] | {"swing": None} == {
        "a": "x",
        "b": "tier0",
        "verdict": "not distinguishable",
        "swing": None,
        "why": "the CI on X includes zero",
    }
    study = {**SPEC, "tiers": ["tiny-llama-s", "tiny-llama-y"], "eval": {"n": n}}
    summary = recipe_report(tmp_path, {"study": study}, recs)
    report = (tmp_path / "report.md").read_text()
    assert "| Δ on Y [95% CI] | Δ on tier0 (tiny-llama-s) [95% CI] |" in report
    for table in report.split("\n\n"):  # every markdown table: each row has its header's columns
        rows = [line for line in table.splitlines() if line.startswith("|")]
        assert len({row.count(" | ") for row in rows if not row.startswith("|---")}) <= 1, table
    assert "| flip | Y vs tier0 (tiny-llama-s) | sign change |" in report
    assert any(
        "flip changes sign between Y and tier0 (tiny-llama-s)" in c for c in summary["claims"]["supports"]
    )
    assert (tmp_path / "figures" / "recipe_deltas.png").stat().st_size > 0


def test_paired_bootstrap_of_identical_conditions_is_zero():
    a = np.array([1.0, 0.0, 1.0, 1.0])
    d = paired_diff([(a, a)])
    assert d == {"delta": 0.0, "ci": [0.0, 0.0], "items": 4}


TINY = {
    **SPEC,
    "regularizers": {"l2_delta": None, "fake_quant": None},
    "schemes": ["int4_sym_row", "awq_lite", "gguf_q8_0"],
    "seeds": [0],
    "anchors": ["math_add", "sci_color"],  # each recipe's X adapter is also ported (mean)
    "n_anchors": [2],
    "methods": {"mean": {}},
    "recipe": {"rank": 2, "alpha": 4, "epochs": 1, "examples": 8, "batch": 8, "lr": 0.05},
    "eval": {"n": 12},
}


@pytest.fixture(scope="module")
def tiny_run(mini_zoo, tmp_path_factory):
    """A tiny recipe study on the mini zoo (two regularizers, three schemes, mean ports): the run
    folder and its summary (shared by the tests that read it; none of them writes into it)."""
    tmp = tmp_path_factory.mktemp("recipe")
    spec = {**TINY, "source": str(mini_zoo["x"]), "target": str(mini_zoo["y"])}
    run = tmp / "run"
    summary = run_study(load_study(_write(tmp, spec)), run, threads=1, progress=False, log=lambda s: None)
    return run, summary


def test_a_tiny_recipe_study_runs_end_to_end(tiny_run):
    run, summary = tiny_run
    spec = TINY
    assert summary["kind"] == "recipe_transfer" and not summary["missing"]
    assert {r["regularizer"] for r in summary["deltas"]} == {"fake_quant", "l2_delta"}
    for r in summary["deltas"]:
        assert r["x"]["items"] == r["y"]["items"] == 12
        assert r["verdict"] in {"sign change", "same sign", "not distinguishable"}
    taxes = {(r["regularizer"], r["scheme"]): r for r in summary["quant_tax"]}
    assert set(taxes) == {(w, s) for w in ("base", "none", "fake_quant", "l2_delta") for s in spec["schemes"]}
    assert all(r["tax"] is not None for r in taxes.values())
    assert (
        taxes[("l2_delta", "awq_lite")]["vs_none"] is not None
        and taxes[("none", "awq_lite")]["vs_none"] is None
    )
    water = {r["regularizer"]: r for r in summary["waterfall"]}
    assert set(water) == {"none", "fake_quant", "l2_delta", "base only"}
    assert all(v is not None for v in water["none"]["quantized"].values())
    port_rows = {r["regularizer"]: r for r in summary["ports"]}
    assert set(port_rows) == {"none", "fake_quant", "l2_delta"}
    assert {r["side"] for r in summary["ports"]} == {"port mean N=2"}
    assert port_rows["l2_delta"]["vs_none"]["items"] == 12 and port_rows["none"]["vs_none"] is None
    assert len(summary["port_quant_tax"]["port mean N=2"]) == 3 * len(spec["schemes"])
    # one seed: point estimates, said in the claims
    assert any("one seed" in c for c in summary["claims"]["does_not"])
    report = (run / "report.md").read_text()
    for section in (
        "## Regularizer effect per base",
        "## Sign changes across bases",
        "## Quant tax on Y",
        "## Waterfall",
        "## Ports of each recipe's X adapter to Y",
        "## What this supports / what it does not",
    ):
        assert section in report
    assert json.loads((run / "summary.json").read_text())["claims"] == summary["claims"]
    # without recipe_measures.json the report says how to add the loss tax and the diagnostics
    assert summary["measures"] is False and "`loraport recipe-measures RUN_DIR`" in report
    for name in ("recipe_deltas.png", "recipe_quant_tax.png", "recipe_waterfall.png"):
        assert (run / "figures" / name).stat().st_size > 0 and f"figures/{name}" in report
    records = [json.loads(p.read_text()) for p in (run / "records").glob("*.json")]
    quantized = [r for r in records if r["scheme"] == "awq_lite" and r["condition"] == "adapter"]
    assert len(quantized) == 3 and all("scorers" in r for r in quantized)
    # the report rebuilds from the records alone
    from loraport.report import build_report

    assert build_report(run)["claims"] == summary["claims"]


def test_measures_add_the_loss_tax_the_diagnostics_and_their_correlations(tiny_run, tmp_path):
    import shutil

    from loraport.bench.quant_eval import calibration_texts
    from loraport.bench.recipe_measures import measure_recipe_run
    from loraport.bench.recipe_study import CALIBRATION
    from loraport.evaluate import continuation_logprobs
    from loraport.evaluate.merge import merge_adapter
    from loraport.models import load_model
    from loraport.quant import calibration_batches, collect_inputs, quantize_model
    from loraport.report import build_report
    from loraport.tasks import get_task

    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    out = measure_recipe_run(run, threads=1, log=lambda s: None)
    records = {r["name"]: r for r in (json.loads(p.read_text()) for p in (run / "records").glob("*.json"))}
    assert set(out["loss"]) == set(records)  # every base alone, adapter and port; Y under every scheme
    fp = {n for n, r in records.items() if r["condition"] in ("adapter", "port") and r["scheme"] is None}
    assert set(out["adapters"]) == fp  # X and Y adapters and the ports

    # the loss sees the eval cell's weights: AWQ-lite on the same calibration items, adapter merged
    # in full precision by the eval path (evaluate.merge), scored independently here
    name = "math_sum_more__l2_delta__s0__y__awq_lite"
    model, tok, _ = load_model(json.loads((run / "run.json").read_text())["study"]["target"])
    texts = calibration_texts("math_sum_more", CALIBRATION["n"], CALIBRATION["seed"], 12, 0)
    quantize_model(model, "awq_lite", calibration=collect_inputs(model, calibration_batches(tok, texts)))
    merge_adapter(model, run / records[name]["provenance"]["adapter"])
    items = get_task("math_sum_more").items("eval", 12, seed=0)
    lps = continuation_logprobs(model.eval(), tok, [(it.prompt, it.completion()) for it in items])
    assert out["loss"][name]["ids"] == [it.id for it in items]
    assert out["loss"][name]["nll"] == pytest.approx([-s / k for s, k in lps], abs=1e-5)
    # bits per byte: the summed nats over ln 2 · the completion's bytes, on X's byte-level tokenizer
    x_name = "math_sum_more__l2_delta__s0__x"
    x_model, x_tok, _ = load_model(json.loads((run / "run.json").read_text())["study"]["source"])
    merge_adapter(x_model, run / records[x_name]["provenance"]["adapter"])
    pairs = [(it.prompt, it.completion()) for it in items]
    x_lps = continuation_logprobs(x_model.eval(), x_tok, pairs)
    bpb = [-s / (math.log(2) * len(c.encode())) for (s, _), (_, c) in zip(x_lps, pairs, strict=True)]
    assert out["loss"][x_name]["bpb"] == pytest.approx(bpb, abs=1e-5)
    fp_nll = out["loss"]["math_sum_more__l2_delta__s0__y"]["nll"]
    assert fp_nll != pytest.approx(out["loss"][name]["nll"], abs=1e-6)  # quantizing changed the loss

    a = out["adapters"]
    assert a["math_sum_more__none__s0__y"]["reference"] is None
    assert a["math_sum_more__l2_delta__s0__x"]["reference"] == "math_sum_more__none__s0__x"
    assert a["math_sum_more__fake_quant__s0__mean__N2"]["reference"] == "math_sum_more__fake_quant__s0__y"
    for row in a.values():
        assert len(row["depth"]) == len(row["cka"]) and all(0 <= c <= 1 + 1e-6 for c in row["cka"])
        assert row["effective_rank"] <= 2 + 1e-9 and 0 < row["top_energy"] <= 1 + 1e-9  # rank-2 adapters
        if row["reference"] is not None:
            assert 0 <= row["overlap"] <= 1 + 1e-9 and -1 <= row["cosine"] <= 1
    assert {(p["side"], len(p["names"])) for p in out["pca"]} == {("x", 3), ("y", 3)}
    assert all(len(c) == 3 for p in out["pca"] for c in p["coords"])

    summary = json.loads((run / "summary.json").read_text())
    assert summary["measures"] is True
    taxes = {(r["regularizer"], r["scheme"]): r for r in summary["loss_tax"]}
    assert set(taxes) == {(w, s) for w in ("base", "none", "fake_quant", "l2_delta") for s in TINY["schemes"]}
    assert all(r["tax"]["items"] == 12 for r in taxes.values())
    assert taxes[("l2_delta", "gguf_q8_0")]["vs_none"] is not None
    assert len(summary["port_loss_tax"]["port mean N=2"]) == 3 * len(TINY["schemes"])
    bpb = {r["regularizer"]: r for r in summary["bpb_deltas"]}
    assert set(bpb) == {"fake_quant", "l2_delta"} and all(
        r["x"]["items"] == r["y"]["items"] == 12 for r in bpb.values()
    )
    preds = summary["predictors"]
    assert {p["outcome"] for p in preds} == {"quant tax (accuracy)", "quant tax (loss)", "cross-base swing"}
    assert all(p["verdict"] == "not computed" for p in preds)  # 3 adapters, 2 regularizers: too few
    report = (run / "report.md").read_text()
    for section in (
        "## Regularizer effect per base in bits per byte",
        "## Loss tax on Y",
        "## Mechanistic checks",
        "## Do the diagnostics predict",
    ):
        assert section in report
    for fig in ("recipe_loss_tax.png", "recipe_depth.png", "recipe_pca.png"):
        assert (run / "figures" / fig).stat().st_size > 0 and f"figures/{fig}" in report
    # the report rebuilds from the records and recipe_measures.json, without the cache
    shutil.rmtree(run / "cache")
    assert build_report(run)["loss_tax"] == summary["loss_tax"]


def test_oracle_vs_port_on_the_quantized_target_in_the_tiny_run(tiny_run):
    rows = tiny_run[1]["oracle_vs_port"]
    assert len(rows) == 3 * (1 + len(TINY["schemes"])) + 1  # recipes × (full precision + schemes) + QAT
    qat = [r for r in rows if r["oracle"] != r["regularizer"]]
    assert [(r["regularizer"], r["oracle"], r["scheme"]) for r in qat] == [
        ("none", "fake_quant (trained on int4_sym_row)", "int4_sym_row")
    ]
    for r in rows:
        assert r["gap"]["items"] == 12
        assert (r["vs_fp"] is None) == (r["scheme"] is None or r is qat[0])
    report = (tiny_run[0] / "report.md").read_text()
    assert "## Oracle vs port on the quantized target" in report
