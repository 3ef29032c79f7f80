"""The recipe_transfer measures' metrics on constructed records (no model): the loss tax's direction,
oracle vs port on the quantized target, and the diagnostics-vs-outcome correlations with their
CI-gated verdicts. The pass itself runs on the mini zoo in test_recipe_study.py."""

from __future__ import annotations

import numpy as np
import pytest

from loraport.bench.recipe_metrics import bpb_index, deltas, index, loss_index, oracle_vs_port, quant_tax
from loraport.bench.recipe_predict import MIN_UNITS, correlation, predicts_sign, predicts_tax
from loraport.report.recipe_measures_report import QAT, claims

N = 300


def _rec(name: str, who: str, side: str, scheme: str | None, correct, condition: str = "adapter") -> dict:
    ids = [f"i{k:03d}" for k in range(len(correct))]
    return {
        "name": name,
        "task": "t",
        "condition": condition,
        "regularizer": None if condition == "base" else who,
        "side": side,
        "scheme": scheme,
        "seed": 0,
        "primary": "exact",
        "scorers": {
            "exact": {"ids": ids, "correct": [int(c) for c in correct], "invalid": [0] * len(correct)}
        },
    }


def test_the_loss_tax_is_quantized_minus_full_precision_nll():
    rng = np.random.default_rng(0)
    fp = rng.uniform(0.5, 2.0, N)
    ones = np.ones(N, int)
    recs = [_rec("a", "none", "y", None, ones), _rec("a_q", "none", "y", "int4_sym_row", ones)]
    # ids stored in reverse order: the index must line items up by id, not by position
    ids = [f"i{k:03d}" for k in range(N)]
    losses = {
        "a": {"ids": ids[::-1], "nll": fp[::-1].tolist()},
        "a_q": {"ids": ids, "nll": (fp + 0.25).tolist()},
    }
    rows = {r["regularizer"]: r for r in quant_tax(loss_index(recs, losses), ["int4_sym_row"])}
    assert rows["none"]["tax"]["delta"] == pytest.approx(0.25)
    assert rows["none"]["tax"]["ci"][0] == pytest.approx(0.25) and rows["base"]["tax"] is None


def test_bits_per_byte_deltas_flag_a_sign_change_only_outside_both_cis():
    """A regularizer that lowers X's loss by 20 mBPB and raises Y's by 30 is a sign change; one
    whose X shift is noise around zero is not distinguishable, whatever its swing."""
    rng = np.random.default_rng(1)
    ids = [f"i{k:03d}" for k in range(N)]
    ones = np.ones(N, int)
    recs, losses = [], {}
    shifts = {"clear": (-0.02, 0.03), "noisy": (0.0, 0.03)}
    for side in ("x", "y"):
        base = rng.uniform(0.5, 1.5, N)
        recs.append(_rec(f"none_{side}", "none", side, None, ones))
        losses[f"none_{side}"] = {"ids": ids, "nll": base.tolist(), "bpb": base.tolist()}
        for reg, (dx, dy) in shifts.items():
            shift = dx if side == "x" else dy
            noise = rng.normal(0, 0.05 if reg == "noisy" and side == "x" else 0.002, N)
            recs.append(_rec(f"{reg}_{side}", reg, side, None, ones))
            losses[f"{reg}_{side}"] = {
                "ids": ids,
                "nll": base.tolist(),
                "bpb": (base + shift + noise).tolist(),
            }
    rows = {r["regularizer"]: r for r in deltas(bpb_index(recs, losses))}
    clear = rows["clear"]
    assert clear["x"]["delta"] == pytest.approx(-20, abs=1) and clear["y"]["delta"] == pytest.approx(
        30, abs=1
    )
    assert clear["verdict"] == "sign change" and clear["swing"] == pytest.approx(50, abs=2)
    assert rows["noisy"]["verdict"] == "not distinguishable"
    assert rows["noisy"]["why"] == "the CI on X includes zero"
    # measures from before bits per byte: no index, so no rows
    old = {k: {"ids": v["ids"], "nll": v["nll"]} for k, v in losses.items()}
    assert deltas(bpb_index(recs, old)) == []
    # the claims: a loss that rises is the regularizer hurting, said in the loss's own words
    yes, no = claims({"measures": True, "bpb_deltas": list(rows.values()), "loss_tax": [], "predictors": []})

    def ci1(d):
        return f"{d['delta']:+.1f} [{d['ci'][0]:+.1f}, {d['ci'][1]:+.1f}]"

    assert yes == [
        f"In bits per byte, clear changes sign across bases: Δ on X {ci1(clear['x'])}, on Y "
        f"{ci1(clear['y'])} mBPB; swing {clear['swing']:+.1f} mBPB.",
        f"In bits per byte, noisy raises the loss on Y: Δ {ci1(rows['noisy']['y'])} mBPB.",
    ]
    assert len(no) == 1 and no[0].startswith(
        "A cross-base sign change (or transfer) in bits per byte for noisy: the CI on X includes zero"
    )


def _port_study(port_loss: float) -> list[dict]:
    """Base 0.2, oracle 0.8, port 0.6 on full-precision Y; quantizing Y costs the oracle nothing
    and the port `port_loss` of the items (and the base nothing)."""
    k = np.arange(N)
    base, oracle, port = k < 0.2 * N, k < 0.8 * N, k < 0.6 * N
    port_q = port & ~(k < port_loss * N)
    s = "int4_sym_row"
    side = "port mean N=8"
    return [
        _rec("b", None, "y", None, base, "base"),
        _rec("b_q", None, "y", s, base, "base"),
        _rec("o", "none", "y", None, oracle),
        _rec("o_q", "none", "y", s, oracle),
        _rec("p", "none", side, None, port, "port"),
        _rec("p_q", "none", side, s, port_q, "port"),
        # fake_quant's Y adapter (trained on the int4 base) scores 0.7 there
        _rec("f", "fake_quant", "y", None, k < 0.7 * N),
        _rec("f_q", "fake_quant", "y", s, k < 0.7 * N),
    ]


def test_oracle_vs_port_on_the_quantized_target():
    rows = oracle_vs_port(index(_port_study(0.3)), ["int4_sym_row"], QAT[:2])
    by = {(r["regularizer"], r["oracle"], r["scheme"]): r for r in rows}
    fp = by[("none", "none", None)]
    assert (fp["port_acc"], fp["oracle_acc"], fp["base_acc"]) == pytest.approx((0.6, 0.8, 0.2))
    assert fp["gap"]["delta"] == pytest.approx(-0.2) and fp["recovered"] == pytest.approx(4 / 6)
    q = by[("none", "none", "int4_sym_row")]
    assert q["port_acc"] == pytest.approx(0.3) and q["recovered"] == pytest.approx(1 / 6)
    # the port loses 0.3 more than the oracle to quantization, paired over items
    assert q["vs_fp"]["delta"] == pytest.approx(-0.3) and q["vs_fp"]["ci"][1] < 0
    qat = by[("none", "fake_quant (trained on int4_sym_row)", "int4_sym_row")]
    assert qat["oracle_acc"] == pytest.approx(0.7) and qat["gap"]["delta"] == pytest.approx(-0.4)
    yes, no = claims({"oracle_vs_port": rows, "measures": False})
    assert any("loses more than its oracle" in c for c in yes)
    assert any("recipe-measures` was not run" in c for c in no)
    # no difference: nothing claimed, and said so
    rows = oracle_vs_port(index(_port_study(0.0)), ["int4_sym_row"])
    assert all(r["oracle"] == r["regularizer"] for r in rows)  # no QAT row without `qat`
    yes, no = claims({"oracle_vs_port": rows, "measures": False})
    assert not yes and any("every change of the gap is inside its CI" in c for c in no)


def test_the_qat_oracle_is_the_fake_quant_regularizer_at_full_strength():
    from loraport.train.regularizers import FakeQuant, get_regularizer

    name, scheme, strength = QAT
    assert scheme == FakeQuant.SCHEME
    assert get_regularizer(name).default == strength == get_regularizer(name).high


def test_correlation_verdicts():
    x = np.linspace(0, 1, 12)
    c = correlation(x, 3 * x**2 + 1)  # monotone: ρ = 1 in every resample with two distinct values
    assert c["rho"] == pytest.approx(1.0) and c["ci"][0] > 0.9
    rng = np.random.default_rng(1)
    noise = correlation(rng.random(12), rng.random(12))
    assert noise["ci"][0] < 0 < noise["ci"][1]
    assert correlation(x[: MIN_UNITS - 1], x[: MIN_UNITS - 1]) is None
    assert correlation(x, np.ones(12)) is None


def _adapter(reg: str, side: str, seed: int, **values) -> dict:
    return {"task": "t", "side": side, "regularizer": reg, "seed": seed, **values}


def test_a_diagnostic_that_tracks_the_tax_predicts_it_and_noise_does_not():
    rng = np.random.default_rng(2)
    adapters, taxes = {}, {}
    for i in range(10):
        name = f"t__r{i}__s0__y"
        tax = float(i) / 10
        adapters[name] = _adapter(f"r{i}", "y", 0, norm=tax * 5 + 1, effective_rank=float(rng.random()))
        taxes[name] = {"accuracy": tax}
    rows = {(r["predictor"], r["outcome"]): r for r in predicts_tax(adapters, taxes)}
    assert rows[("norm", "quant tax (accuracy)")]["verdict"] == "predicts"
    assert rows[("effective_rank", "quant tax (accuracy)")]["verdict"] in ("does not predict", "predicts")
    assert rows[("effective_rank", "quant tax (accuracy)")]["n"] == 10
    assert rows[("norm", "quant tax (loss)")]["verdict"] == "not computed"  # no loss taxes given
    assert rows[("cka_mean", "quant tax (accuracy)")]["n"] == 0


def test_the_cross_base_shift_of_a_diagnostic_against_the_swing():
    adapters, deltas = {}, []
    for side in "xy":
        adapters[f"none_{side}"] = _adapter("none", side, 0, norm=2.0)
    for i in range(8):
        # r_i doubles-ish the norm on Y relative to X by i/8; its swing grows with it
        adapters[f"r{i}_x"] = _adapter(f"r{i}", "x", 0, norm=2.0, overlap=0.5)
        adapters[f"r{i}_y"] = _adapter(f"r{i}", "y", 0, norm=2.0 * (1 + i / 8), overlap=0.5)
        deltas.append({"regularizer": f"r{i}", "swing": 0.05 * i})
    deltas.append({"regularizer": "missing", "swing": None})
    rows = {r["predictor"]: r for r in predicts_sign(adapters, deltas)}
    assert rows["norm"]["verdict"] == "predicts" and rows["norm"]["n"] == 8
    assert rows["norm"]["rho"] == pytest.approx(1.0)
    assert rows["overlap"]["verdict"] == "not computed"  # the same overlap on both bases: constant
    assert rows["effective_rank"]["n"] == 0


def test_bits_per_byte_claims_name_the_capacity_tiers_too():
    from loraport.report.recipe_measures_report import tier_claims

    row = {
        "regularizer": "flip",
        "across_tiers": [
            {
                "a": "y",
                "b": "tier0",
                "verdict": "sign change",
                "swing": -300.04,
                "why": "both CIs exclude zero, signs differ",
            },
            {
                "a": "x",
                "b": "tier0",
                "verdict": "same sign",
                "swing": -5.0,
                "why": "both CIs exclude zero, same sign",
            },
            {
                "a": "x",
                "b": "tier1",
                "verdict": "not distinguishable",
                "swing": 4.0,
                "why": "the CI on tier1 includes zero",
            },
        ],
    }
    yes, no = tier_claims(row, digits=1, unit=" mBPB", lead="In bits per byte, ", of=" in bits per byte")
    assert yes == [
        "In bits per byte, flip changes sign between Y and tier0: swing -300.0 mBPB (both CIs exclude zero, signs differ).",
        "In bits per byte, flip moves X and tier0 the same way (both CIs exclude zero, same sign).",
    ]
    assert (
        no
        == "A sign change (or transfer) in bits per byte for flip between X and tier1 (the CI on tier1 includes zero)."
    )
    assert tier_claims({"regularizer": "none_here"}) == ([], None)  # a study without tiers
    # the bits-per-byte claims carry them, beside the X/Y ones
    xy = {"x": None, "y": None, "verdict": "not distinguishable", "swing": None, "why": "no data"}
    all_yes, all_no = claims(
        {"measures": True, "bpb_deltas": [{**row, **xy}], "loss_tax": [], "predictors": []}
    )
    assert yes[0] in all_yes and no in all_no
