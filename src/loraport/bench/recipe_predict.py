"""Do the weight diagnostics predict the quant tax or the cross-base sign? (issue 19, item 5)

For each diagnostic (bench.recipe_measures) and outcome: Spearman's ρ over the units
(scipy.stats.spearmanr) with a 95% percentile bootstrap CI (scipy.stats.bootstrap, units resampled
in pairs, BOOT resamples, seed 0). A diagnostic is said to predict an outcome only where the CI
excludes zero; otherwise the report says plainly that it does not, at this number of units (the
seed's "suggestive, not predictive"). Fewer than MIN_UNITS units: no ρ at all.

- quant tax: the units are Y adapters (recipe × seed × task); the outcome is the adapter's tax
  averaged over the study's schemes, on accuracy (full precision − quantized) and on loss
  (quantized − full-precision mean token NLL, where the measures have it).
- cross-base sign: the units are regularizers; the outcome is the swing Δ_Y − Δ_X of accuracy
  against none; the predictor is how differently the regularizer moves the diagnostic on the two
  bases, (d_reg,Y / d_none,Y) − (d_reg,X / d_none,X), each d averaged over tasks and seeds (a ratio,
  because X and Y differ in width and depth, so raw values do not compare across bases).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from loraport.bench.metrics import correct

NONE = "none"
#: The per-adapter diagnostics that enter the correlations (bench.recipe_measures' names).
PREDICTORS = ("effective_rank", "stable_rank", "top_energy", "norm", "cka_mean", "overlap")
MIN_UNITS = 5
BOOT = 2000


def _rho(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's ρ along `axis` (vectorised for the bootstrap). A resample where one side is
    constant has no rank order; it counts as ρ = 0, which can only widen the CI toward zero."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=axis), rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    den = np.sqrt((rx**2).sum(axis=axis) * (ry**2).sum(axis=axis))
    num = (rx * ry).sum(axis=axis)
    return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)


def correlation(x: list[float], y: list[float]) -> dict[str, Any] | None:
    """Spearman's ρ of paired values with its 95% bootstrap CI; None below MIN_UNITS or when a side
    is constant."""
    from scipy.stats import bootstrap, spearmanr

    x_, y_ = np.asarray(x, float), np.asarray(y, float)
    if len(x_) < MIN_UNITS or np.ptp(x_) == 0 or np.ptp(y_) == 0:
        return None
    rho = float(spearmanr(x_, y_).statistic)
    kwargs = {"paired": True, "vectorized": True, "n_resamples": BOOT, "method": "percentile"}
    try:  # scipy >= 1.15 takes `rng`; the oldest scipy pyproject allows (1.11) only `random_state`
        res = bootstrap((x_, y_), _rho, **kwargs, rng=np.random.default_rng(0))
    except TypeError:
        res = bootstrap((x_, y_), _rho, **kwargs, random_state=np.random.default_rng(0))
    ci = res.confidence_interval
    return {"rho": rho, "ci": [float(ci.low), float(ci.high)], "n": len(x_)}


def adapter_taxes(
    records: list[dict[str, Any]], loss: dict[str, dict[str, list]], schemes: list[str]
) -> dict[str, dict[str, float]]:
    """Full-precision Y adapter record name -> {"accuracy": mean tax over schemes, "loss": ...}
    (a scheme counts where both records exist; "loss" only where the measures have every one)."""
    by_name = {r["name"]: r for r in records}
    out: dict[str, dict[str, float]] = {}
    for r in records:
        if r["condition"] != "adapter" or r["side"] != "y" or r.get("scheme") is not None:
            continue
        fp = correct(r)
        if fp is None:
            continue
        acc, nll = [], []
        for s in schemes:
            q = by_name.get(f"{r['name']}__{s}")
            cq = correct(q) if q is not None else None
            if cq is not None and len(cq) == len(fp):
                acc.append(float(fp.mean() - cq.mean()))
            if r["name"] in loss and q is not None and q["name"] in loss:
                nll.append(float(np.mean(loss[q["name"]]["nll"]) - np.mean(loss[r["name"]]["nll"])))
        row = {}
        if acc:
            row["accuracy"] = float(np.mean(acc))
        if nll and len(nll) == len(schemes):
            row["loss"] = float(np.mean(nll))
        out[r["name"]] = row
    return out


def predicts_tax(
    adapters: dict[str, dict[str, Any]], taxes: dict[str, dict[str, float]]
) -> list[dict[str, Any]]:
    """Per predictor and outcome ("accuracy", "loss"): ρ over the Y adapters that have both."""
    rows = []
    for pred in PREDICTORS:
        for outcome in ("accuracy", "loss"):
            units = [
                n for n, t in taxes.items() if outcome in t and adapters.get(n, {}).get(pred) is not None
            ]
            xs = [adapters[n][pred] for n in units]
            ys = [taxes[n][outcome] for n in units]
            rows.append(
                {
                    "predictor": pred,
                    "outcome": f"quant tax ({outcome})",
                    **_verdict(correlation(xs, ys), len(units)),
                }
            )
    return rows


def predicts_sign(adapters: dict[str, dict[str, Any]], deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per predictor: ρ over regularizers between the cross-base difference of its relative shift
    of the diagnostic (`_shift`) and its swing Δ_Y − Δ_X."""
    mean: dict[tuple[str, str, str], list[float]] = defaultdict(list)  # (pred, side, reg) -> values
    for a in adapters.values():
        if a["side"] in ("x", "y"):
            for pred in PREDICTORS:
                if a.get(pred) is not None:
                    mean[(pred, a["side"], a["regularizer"])].append(a[pred])
    avg = {k: float(np.mean(v)) for k, v in mean.items()}
    rows = []
    for pred in PREDICTORS:
        xs, ys = [], []
        for d in deltas:
            shift = {s: _shift(avg, pred, s, d["regularizer"]) for s in "xy"}
            if d["swing"] is None or None in shift.values():
                continue
            xs.append(shift["y"] - shift["x"])
            ys.append(d["swing"])
        rows.append(
            {"predictor": pred, "outcome": "cross-base swing", **_verdict(correlation(xs, ys), len(xs))}
        )
    return rows


def _shift(avg: dict[tuple[str, str, str], float], pred: str, side: str, reg: str) -> float | None:
    """The regularizer's diagnostic on one base relative to none's (d_reg / d_none); "overlap" is
    already measured against none's adapter (and scale-free), so it enters as it is."""
    d = avg.get((pred, side, reg))
    if pred == "overlap" or d is None:
        return d
    ref = avg.get((pred, side, NONE))
    return d / ref if ref else None


def _verdict(c: dict[str, Any] | None, n: int) -> dict[str, Any]:
    if c is None:
        why = f"{n} units (fewer than {MIN_UNITS}) or a constant side" if n < MIN_UNITS else "a constant side"
        return {"rho": None, "ci": None, "n": n, "verdict": "not computed", "why": why}
    lo, hi = c["ci"]
    if lo > 0 or hi < 0:
        return {**c, "verdict": "predicts", "why": "the CI excludes zero"}
    return {**c, "verdict": "does not predict", "why": f"the CI includes zero at n = {c['n']}"}
