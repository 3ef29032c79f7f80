"""The `cka` layer map, registered in arch.layers.LAYER_MAPS: each target layer reads the source
layer `align` pairs it with by CKA of both bases' hidden states on generic text (port.align; it
loads both bases, and is memoised per pair of bases)."""

from __future__ import annotations

from loraport.arch.layers import LAYER_MAPS
from loraport.errors import ArchError


@LAYER_MAPS.register("cka")
def cka_layers(
    n_source: int,
    n_target: int,
    *,
    source_base: str | None = None,
    target_base: str | None = None,
    **_: object,
) -> list[int]:
    if source_base is None or target_base is None:
        raise ArchError("layer map 'cka' needs both bases (source_base= and target_base=)")
    from loraport.port.align import cached_alignment, target_layer_map

    return target_layer_map(cached_alignment(source_base, target_base))
