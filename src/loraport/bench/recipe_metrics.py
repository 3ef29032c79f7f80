"""The recipe_transfer study's metrics, from stored records alone (numpy, no torch).

Every comparison is paired over eval items: a condition's score on an item is its correctness
averaged over the seeds both sides of the comparison have, items are pooled over the study's tasks,
and the 95% CI is a bootstrap that resamples items within each task (the same resample for both
sides). With one seed the CIs cover item sampling only, not training noise.

- delta(reg, side): accuracy of reg's adapters − accuracy of none's, on the same base.
- sign change: Δ on X and Δ on Y with opposite signs, *both* CIs excluding zero; the swing is
  Δ_Y − Δ_X. Otherwise "same sign" (both exclude zero, same sign) or "not distinguishable".
- quant tax(reg, scheme): accuracy with the adapter on Y in full precision − on Y quantized with
  the scheme (positive: quantizing the base costs accuracy); its difference from none's tax says
  whether the regularizer changes what quantization costs.
- waterfall: base, + adapter, quantized base + adapter (per scheme), accuracy per stage.
- ports (studies with methods): each recipe's X adapter ported to Y; its accuracy and Δ against
  none's port, and the quant tax of the port.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from loraport.bench.metrics import BOOTSTRAP, correct

NONE = "none"


def index(records: list[dict[str, Any]]) -> dict[tuple, dict[str, dict[int, np.ndarray]]]:
    """(regularizer or "base", side, scheme) -> task -> seed -> per-item correctness (ordered by
    item id, so two conditions of a task line up). Missing records are left out."""
    out: dict[tuple, dict[str, dict[int, np.ndarray]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        c = correct(r)
        if c is None:
            continue
        ids = r["scorers"][r["primary"]]["ids"]
        c = c[np.argsort(ids, kind="stable")]
        who = "base" if r["condition"] == "base" else r["regularizer"]
        out[(who, r["side"], r.get("scheme"))][r["task"]][r.get("seed", 0)] = c
    return out


def _aligned(*conds: dict[str, dict[int, np.ndarray]]) -> list[list[np.ndarray]]:
    """Per task every condition has: each one's per-item correctness averaged over the seeds they
    all have (tasks without a common seed or with differing item counts are left out)."""
    out = []
    for task in sorted(set.intersection(*(set(c) for c in conds))):
        seeds = sorted(set.intersection(*(set(c[task]) for c in conds)))
        if not seeds:
            continue
        rows = [np.mean([c[task][s] for s in seeds], axis=0) for c in conds]
        if len({len(r) for r in rows}) == 1 and len(rows[0]):
            out.append(rows)
    return out


def _paired(
    a: dict[str, dict[int, np.ndarray]], b: dict[str, dict[int, np.ndarray]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(a's, b's) per-item correctness per task both have, over their common seeds."""
    return [(ra, rb) for ra, rb in _aligned(a, b)]


def paired_diff(
    pairs: list[tuple[np.ndarray, np.ndarray]], seed: int = 0, n_boot: int = BOOTSTRAP
) -> dict[str, Any] | None:
    """mean(a − b) over the pooled items with a 95% bootstrap CI (items resampled within each
    task); None when there is nothing to pair."""
    if not pairs:
        return None
    diffs = [a - b for a, b in pairs]
    pooled = np.concatenate(diffs)
    rng = np.random.default_rng(seed)
    boots = np.zeros(n_boot)
    for d in diffs:
        idx = rng.integers(0, len(d), size=(n_boot, len(d)))
        boots += d[idx].sum(axis=1)
    boots /= len(pooled)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"delta": float(pooled.mean()), "ci": [float(lo), float(hi)], "items": len(pooled)}


def excludes_zero(ci: list[float]) -> bool:
    return ci[0] > 0 or ci[1] < 0


def sign_change(
    dx: dict[str, Any] | None, dy: dict[str, Any] | None, names: tuple[str, str] = ("X", "Y")
) -> dict[str, Any]:
    """The cross-base verdict for one regularizer from its Δ on X and on Y (paired_diff results;
    `names` the two bases' names, for a tier pair): "sign change" only when both CIs exclude zero
    and the signs differ (swing Δ_Y − Δ_X), "same sign" when both exclude zero with one sign, else
    "not distinguishable" (which CI holds zero)."""
    if dx is None or dy is None:
        return {"verdict": "missing", "swing": None, "why": "a base has no paired records"}
    inside = [s for s, d in zip(names, (dx, dy), strict=True) if not excludes_zero(d["ci"])]
    swing = dy["delta"] - dx["delta"]
    if inside:
        why = f"the CI on {inside[0]} includes zero"
        if len(inside) == 2:
            why = f"the CIs on {names[0]} and {names[1]} include zero"
        return {"verdict": "not distinguishable", "swing": swing, "why": why}
    if (dx["delta"] > 0) != (dy["delta"] > 0):
        return {"verdict": "sign change", "swing": swing, "why": "both CIs exclude zero, signs differ"}
    return {"verdict": "same sign", "swing": swing, "why": "both CIs exclude zero, same sign"}


def regularizers(idx: dict) -> list[str]:
    regs = sorted({k[0] for k in idx if k[0] not in ("base", NONE)})
    return regs


def tier_sides(idx: dict) -> list[str]:
    """The sides of a study's other capacity tiers ("tier<i>"), in tier order."""
    return sorted({k[1] for k in idx if k[1].startswith("tier")}, key=lambda s: int(s[4:]))


def deltas(idx: dict) -> list[dict[str, Any]]:
    """Per regularizer: Δ vs none on X and on Y (full precision) and the cross-base verdict; with
    tiers, its Δ on each ("tiers") and the verdict of X and of Y against each ("across_tiers")."""
    rows = []
    tiers = tier_sides(idx)
    for reg in regularizers(idx):
        d = {
            s: paired_diff(_paired(idx.get((reg, s, None), {}), idx.get((NONE, s, None), {})))
            for s in ["x", "y", *tiers]
        }
        row = {"regularizer": reg, "x": d["x"], "y": d["y"], **sign_change(d["x"], d["y"])}
        if tiers:
            row["tiers"] = {t: d[t] for t in tiers}
            row["across_tiers"] = [
                {"a": a, "b": t, **sign_change(d[a], d[t], (a.upper(), t))} for t in tiers for a in ("x", "y")
            ]
        rows.append(row)
    return rows


def port_sides(idx: dict) -> list[str]:
    """The sides of ported adapters ("port <variant> N=<n>"), in a stable order."""
    return sorted({k[1] for k in idx if k[1].startswith("port ")})


def ports(idx: dict) -> list[dict[str, Any]]:
    """Per port side and recipe: the port's accuracy on Y, the recipe's Y oracle beside it, and
    (for regularizers) the port's Δ against none's port of the same variant and N, with its CI."""
    rows = []
    for side in port_sides(idx):
        ref = idx.get((NONE, side, None), {})
        for who in [NONE, *regularizers(idx)]:
            cells = idx.get((who, side, None), {})
            rows.append(
                {
                    "side": side,
                    "regularizer": who,
                    "accuracy": _acc(cells),
                    "oracle_y": _acc(idx.get((who, "y", None), {})),
                    "vs_none": None if who == NONE else paired_diff(_paired(cells, ref)),
                }
            )
    return rows


def quant_tax(idx: dict, schemes: list[str], side: str = "y") -> list[dict[str, Any]]:
    """Per (regularizer or none or "base", scheme): the tax on Y and, for regularizers, its
    difference from none's tax (both paired over items, with CIs). `side` "y": the adapters
    trained on Y; a port side: the ports (the base row is then left out)."""
    rows = []
    for who in ["base", NONE, *regularizers(idx)] if side == "y" else [NONE, *regularizers(idx)]:
        for scheme in schemes:
            y = "y" if who == "base" else side
            fp, q = idx.get((who, y, None), {}), idx.get((who, y, scheme), {})
            tax = paired_diff(_paired(fp, q))
            row: dict[str, Any] = {"regularizer": who, "scheme": scheme, "tax": tax, "vs_none": None}
            if who not in ("base", NONE):
                nfp, nq = idx.get((NONE, side, None), {}), idx.get((NONE, side, scheme), {})
                # (fp_reg − q_reg) − (fp_none − q_none) per item, as a − b with a = fp_reg + q_none
                pairs = [(f + nq_, q_ + nf) for f, q_, nf, nq_ in _aligned(fp, q, nfp, nq)]
                row["vs_none"] = paired_diff(pairs)
            rows.append(row)
    return rows


def _acc(cells: dict[str, dict[int, np.ndarray]]) -> float | None:
    """Mean accuracy over tasks and seeds (each task's items pooled with its seeds averaged)."""
    vals = [np.mean(list(seeds.values()), axis=0) for seeds in cells.values() if seeds]
    return float(np.concatenate(vals).mean()) if vals else None


def waterfall(idx: dict, schemes: list[str]) -> list[dict[str, Any]]:
    """Per recipe: accuracy of base Y, + adapter, and quantized Y + adapter per scheme (with the
    quantized base alone as its own row), and the same first two stages on X."""
    rows = []
    for who in [NONE, *regularizers(idx)]:
        rows.append(
            {
                "regularizer": who,
                "base_x": _acc(idx.get(("base", "x", None), {})),
                "adapter_x": _acc(idx.get((who, "x", None), {})),
                "base_y": _acc(idx.get(("base", "y", None), {})),
                "adapter_y": _acc(idx.get((who, "y", None), {})),
                "quantized": {s: _acc(idx.get((who, "y", s), {})) for s in schemes},
            }
        )
    rows.append(
        {
            "regularizer": "base only",
            "base_x": _acc(idx.get(("base", "x", None), {})),
            "adapter_x": None,
            "base_y": _acc(idx.get(("base", "y", None), {})),
            "adapter_y": None,
            "quantized": {s: _acc(idx.get(("base", "y", s), {})) for s in schemes},
        }
    )
    return rows


def _measure_index(
    records: list[dict[str, Any]], losses: dict[str, dict[str, list]], key: str, factor: float
) -> dict[tuple, Any]:
    """index()'s layout over one per-item measure of bench.recipe_measures, times `factor`."""
    out: dict[tuple, dict[str, dict[int, np.ndarray]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        row = losses.get(r["name"])
        if row is None or key not in row:
            continue
        order = np.argsort(row["ids"], kind="stable")
        who = "base" if r["condition"] == "base" else r["regularizer"]
        out[(who, r["side"], r.get("scheme"))][r["task"]][r.get("seed", 0)] = (
            factor * np.asarray(row[key])[order]
        )
    return out


def loss_index(records: list[dict[str, Any]], losses: dict[str, dict[str, list]]) -> dict[tuple, Any]:
    """index()'s layout over the per-item losses of bench.recipe_measures, as the *negative* mean
    token NLL, so that quant_tax over it is NLL(quantized) − NLL(full precision): positive, as for
    accuracy, when quantizing the base costs (here: raises the loss)."""
    return _measure_index(records, losses, "nll", -1.0)


def bpb_index(records: list[dict[str, Any]], losses: dict[str, dict[str, list]]) -> dict[tuple, Any]:
    """index()'s layout over the per-item loss in milli-bits per byte of the reference answer (mBPB,
    the reference study's unit; lower is better), so that deltas() over it gives each regularizer's
    Δ = mBPB(regularizer) − mBPB(none) per base: positive when the regularizer raises the loss.
    Empty for measures computed before bits per byte were (no "bpb" per record)."""
    return _measure_index(records, losses, "bpb", 1000.0)


def _gap(idx: dict, side: str, port_who: str, oracle_who: str, scheme: str | None) -> dict[str, Any]:
    """Port (side, recipe port_who) against the Y adapter of oracle_who, both on Y with `scheme`
    (None: full precision): accuracies (port_acc, oracle_acc, base_acc), port − oracle paired with
    its CI ("gap") and the gap recovered, (port − base)/(oracle − base)."""
    port, oracle = idx.get((port_who, side, scheme), {}), idx.get((oracle_who, "y", scheme), {})
    p, o, b = _acc(port), _acc(oracle), _acc(idx.get(("base", "y", scheme), {}))
    rec = None if None in (p, o, b) or o == b else (p - b) / (o - b)
    return {
        "port_acc": p,
        "oracle_acc": o,
        "base_acc": b,
        "gap": paired_diff(_paired(port, oracle)),
        "recovered": rec,
    }


def oracle_vs_port(idx: dict, schemes: list[str], qat: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """Per port side, recipe and scheme (None first): the port and its recipe's Y oracle on the same
    (quantized) Y — port − oracle with CI, gap recovered — and, per scheme, how quantizing the base
    moves that gap: (port_q − oracle_q) − (port_fp − oracle_fp), paired, with CI (negative: the
    port loses more to quantization than the oracle). `qat` (regularizer, scheme): that
    regularizer's Y adapter was trained on Y quantized with the scheme (fake_quant at λ = 1), so
    for that scheme none's port is also compared with it: an oracle trained on the quantized Y."""
    rows = []
    for side in port_sides(idx):
        for who in [NONE, *regularizers(idx)]:
            for scheme in [None, *schemes]:
                row = {"side": side, "regularizer": who, "oracle": who, "scheme": scheme}
                row.update(_gap(idx, side, who, who, scheme))
                row["vs_fp"] = None
                if scheme is not None:
                    keys = [(who, side, scheme), (who, "y", None), (who, "y", scheme), (who, side, None)]
                    pq, of, oq, pf = (idx.get(k, {}) for k in keys)
                    row["vs_fp"] = paired_diff([(a + b, c + d) for a, b, c, d in _aligned(pq, of, oq, pf)])
                rows.append(row)
        if qat is not None and qat[1] in schemes and (qat[0], "y", qat[1]) in idx:
            row = {
                "side": side,
                "regularizer": NONE,
                "oracle": f"{qat[0]} (trained on {qat[1]})",
                "scheme": qat[1],
            }
            rows.append({**row, **_gap(idx, side, NONE, qat[0], qat[1]), "vs_fp": None})
    return rows
