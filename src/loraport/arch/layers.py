"""Layer correspondences between models of different depth, one registry of maps. A map returns,
for each target layer, the source layer it reads from; it is called with the two layer counts and
keyword context (`source_base`, `target_base`), which maps that need no more ignore.

    relative   same relative depth, from the layer counts alone (here)
    cka        CKA of both bases' hidden states on generic text (port.layermaps; loads both bases)
"""

from __future__ import annotations

from collections.abc import Callable

from loraport.errors import ArchError
from loraport.registry import Registry

LayerMap = Callable[..., list[int]]
#: Layer maps by name: (n_source, n_target, **context) -> source layer per target layer.
#:
#:     layer_map(4, 3)        # [0, 2, 3] ("relative")
LAYER_MAPS: Registry[LayerMap] = Registry("layer map", ArchError)


@LAYER_MAPS.register("relative")
def relative_depth(n_source: int, n_target: int, **_: object) -> list[int]:
    """Target layer l ↔ the source layer at the same relative depth, l·(Ls−1)/(Lt−1), rounded."""
    if n_source <= 0 or n_target <= 0:
        raise ArchError(f"layer counts must be positive, got {n_source} and {n_target}")
    if n_target == 1:
        return [0]
    return [round(t * (n_source - 1) / (n_target - 1)) for t in range(n_target)]


def layer_map(n_source: int, n_target: int, strategy: str = "relative", **ctx: object) -> list[int]:
    out = LAYER_MAPS.get(strategy)(n_source, n_target, **ctx)
    if len(out) != n_target or any(not 0 <= s < n_source for s in out):
        raise ArchError(f"layer map {strategy!r} returned an invalid correspondence {out}")
    return out
