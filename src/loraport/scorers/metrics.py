"""Aggregate metrics over scored samples."""

from __future__ import annotations

import math

from loraport.errors import LoraportError


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k) for n samples of which c passed.

    Exact integer binomials, so it is correct for any n (no float underflow).
    """
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise LoraportError(f"pass_at_k {name}={value!r}: need an integer")
    if n < 1 or not 0 <= c <= n:
        raise LoraportError(f"pass_at_k n={n}, c={c}: need n >= 1 and 0 <= c <= n")
    if not 1 <= k <= n:
        raise LoraportError(f"pass_at_k k={k}: need 1 <= k <= n (n={n})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)
