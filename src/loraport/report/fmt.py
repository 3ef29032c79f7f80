"""Number formats the study reports share (no torch): an accuracy-like number and a paired
difference with its 95% CI, as the recipe, tiers and snapshot reports print them."""

from __future__ import annotations

from typing import Any


def num(x: float | None, signed: bool = False) -> str:
    """Three decimals ("+" in front when `signed`); "—" for a missing number."""
    return "—" if x is None else (f"{x:+.3f}" if signed else f"{x:.3f}")


def delta_ci(d: dict[str, Any] | None, digits: int = 3, sign: float = 1.0) -> str:
    """A paired difference {"delta", "ci"} as "Δ [lo, hi]"; `sign` -1 states the opposite
    difference (b − a); "—" for a missing one."""
    if d is None:
        return "—"
    lo, hi = sorted((sign * d["ci"][0], sign * d["ci"][1]))
    return f"{sign * d['delta']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"
