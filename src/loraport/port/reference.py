"""The float64 port from the original anchors: what a port through a packed map must match.

    ref = reference_port(fmap, load_anchors("anchors.yaml"), "adapters/new")   # {module: LowRank}
    worst = max(rel_error(ported.lowrank(m), ref[m]) for m in ref)            # ≤ 1e-3 required

It uses the map's fitted state (the method's N×N solves, made at fit time from the anchors) and
none of its packed factors: the input's kernels and the weighted sums come from the anchor adapters
in float64, and every rank-r truncation is an exact SVD. Slow at 3B shapes (tens of seconds); for
tests and the benchmark, not for ports.
"""

from __future__ import annotations

from pathlib import Path

import torch

from loraport.adapters import LowRank, inner, load_adapter, refactor
from loraport.adapters.lowrank import _finish, stack_rows
from loraport.port.anchors import AnchorsSpec
from loraport.port.apply import weights_from_kernels
from loraport.port.fitted import FittedMap
from loraport.port.methods import get_method


def _f64(lr: LowRank) -> LowRank:
    return LowRank(lr.B.double(), lr.A.double())


def exact_rank(parts: list[LowRank], w: torch.Tensor, rank: int) -> LowRank:
    """Best rank-`rank` factors of Σ_j w_j B_j A_j by an exact SVD (float64)."""
    B = torch.cat([p.B.double() * float(wj) for p, wj in zip(parts, w, strict=True)], dim=1)
    A = torch.cat([p.A.double() for p in parts], dim=0)
    qb, rb = torch.linalg.qr(B)
    qa, ra = torch.linalg.qr(A.T)
    U, S, Vh = torch.linalg.svd(rb @ ra.T, full_matrices=False)
    root = S[:rank].sqrt()
    return _finish((qb @ U[:, :rank]) * root, root[:, None] * (Vh[:rank] @ qa.T), rank)


def reference_port(
    fmap: FittedMap, spec: AnchorsSpec, adapter: str | Path, layers: list[int] | None = None
) -> dict[str, LowRank]:
    """{module: float64 factors} of the port of `adapter` computed from `spec`'s anchor adapters,
    for the target modules of `layers` (None: all; the input's kernels always use every module)."""
    m = get_method(fmap.method, **fmap.options)
    x = load_adapter(adapter)
    xs = [load_adapter(p.source) for p in spec.pairs]
    ys = [load_adapter(p.target) for p in spec.pairs]
    sx, sy = fmap.side("source"), fmap.side("target")
    kin: dict[str, torch.Tensor] = {}
    kxx: dict[str, float] = {}
    if m.uses_input:
        for key in sx.keys:
            xl = _f64(sx.lowrank(x, key))
            kin[key] = torch.stack([inner(xl, sx.lowrank(a, key)) for a in xs])
            kxx[key] = float(inner(xl, xl))
    weights, _ = weights_from_kernels(fmap, m, kin, kxx)
    parts: dict[str, list[LowRank]] = {}
    for key, (module, _, _) in sy.keys.items():
        if layers is not None and int(key.split(".", 1)[0]) not in layers:
            continue
        anchors = [sy.lowrank(a, key) for a in ys]
        parts.setdefault(module, []).append(exact_rank(anchors, weights[key], fmap.rank))
    return {
        name: ps[0] if len(ps) == 1 else refactor(stack_rows(ps), fmap.rank) for name, ps in parts.items()
    }


def rel_error(got: LowRank, ref: LowRank) -> float:
    """‖ΔW_got − ΔW_ref‖_F / ‖ΔW_ref‖_F from factors alone (float64)."""
    g, r = _f64(got), _f64(ref)
    diff = float(inner(g, g)) + float(inner(r, r)) - 2 * float(inner(g, r))
    return max(diff, 0.0) ** 0.5 / max(float(inner(r, r)), 1e-300) ** 0.5
