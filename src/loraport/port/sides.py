"""One side of a port (source X or target Y): a base architecture and adapters on it, indexed by
logical tensor keys "layer.role" so fused and unfused projections pair up by role."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from loraport.adapters import Adapter, LowRank
from loraport.adapters.lowrank import block_sum
from loraport.arch import Arch, ModuleInfo
from loraport.errors import AnchorError


def key_of(layer: int, role: str) -> str:
    return f"{layer}.{role}"


@dataclass
class Side:
    arch: Arch
    base: str
    modules: dict[str, ModuleInfo]  # module name -> info (same set for every adapter on the side)
    keys: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # key -> (module, rows)

    @classmethod
    def build(cls, arch: Arch, base: str, adapters: list[Adapter]) -> Side:
        modules = arch.check_adapter(adapters[0], base)
        for ad in adapters[1:]:
            got = set(arch.check_adapter(ad, base))
            if got != set(modules):
                diff = sorted(set(modules) ^ got)[0]
                raise AnchorError(
                    f"{ad.path}: adapts a different set of modules than {adapters[0].path} (e.g. {diff})"
                )
        return cls.of_modules(arch, base, modules)

    @classmethod
    def of_modules(cls, arch: Arch, base: str, modules: dict[str, ModuleInfo]) -> Side:
        """A side whose adapters adapt `modules` (a fitted map knows them without any adapter)."""
        side = cls(arch, base, modules)
        for name, info in modules.items():
            for part in info.parts:
                side.keys[key_of(info.layer, part.role)] = (name, part.start, part.stop)
        return side

    def lowrank(self, adapter: Adapter, key: str) -> LowRank:
        module, start, stop = self.keys[key]
        lr = adapter.lowrank(module)
        return lr if (start, stop) == (0, lr.shape[0]) else lr.rows(start, stop)

    def check_same_modules(self, adapter: Adapter) -> None:
        got = set(self.arch.check_adapter(adapter, self.base))
        if got != set(self.modules):
            diff = sorted(set(self.modules) ^ got)[0]
            raise AnchorError(
                f"{adapter.path}: adapts a different set of modules than the anchors (e.g. {diff})"
            )


def stacked_grams(parts: list[LowRank]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(K, GB, GA): the N×N Gram of ΔWs and the (Σr)² Grams of the stacked B and A factors.

    The big products run in float32 (their error, ~1e-6 relative, is far below anything a port can
    resolve); the small results are kept in float64 for the solves that follow.
    """
    Bc = torch.cat([p.B for p in parts], dim=1)
    Ac = torch.cat([p.A for p in parts], dim=0)
    GB = (Bc.T @ Bc).double()
    GA = (Ac @ Ac.T).double()
    ranks = [p.rank for p in parts]
    return block_sum(GB * GA, ranks, ranks), GB, GA


def input_kernel(x: LowRank, anchors: list[LowRank]) -> torch.Tensor:
    """⟨x, anchor_j⟩ for every anchor (float64 vector)."""
    Bc = torch.cat([p.B for p in anchors], dim=1)
    Ac = torch.cat([p.A for p in anchors], dim=0)
    prod = ((x.B.T @ Bc) * (x.A @ Ac.T)).double()  # (r × Σr)
    return block_sum(prod, [x.rank], [p.rank for p in anchors])[0]
