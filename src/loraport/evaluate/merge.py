"""Putting an adapter's ΔW into a loaded base model's weights (what PEFT's merge does)."""

from __future__ import annotations

import os
from typing import Any

import torch

from loraport.adapters import Adapter, LowRank, load_adapter
from loraport.arch import arch_for
from loraport.errors import AdapterError


@torch.no_grad()
def merge_factors(model: torch.nn.Module, modules: dict[str, LowRank], label: str = "adapter") -> None:
    """W += B @ A for every module; AdapterError naming the module when it does not fit."""
    named = dict(model.named_modules())
    for name, lr in modules.items():
        target = named.get(name)
        if target is None or not hasattr(target, "weight"):
            raise AdapterError(f"{label}: module {name} is not in the base model")
        if tuple(target.weight.shape) != lr.shape:
            raise AdapterError(
                f"{label}: module {name} has ΔW {lr.shape}, the base's weight is {tuple(target.weight.shape)}"
            )
        target.weight += (lr.B @ lr.A).to(target.weight.device, target.weight.dtype)


def merge_adapter(model: torch.nn.Module, adapter: str | os.PathLike[str] | Adapter) -> dict[str, Any]:
    """Merge a PEFT folder (or loaded Adapter) into `model`; returns its provenance record."""
    ad = adapter if isinstance(adapter, Adapter) else load_adapter(adapter)
    arch_for(model.config).check_adapter(ad, "base model")
    merge_factors(model, {m: ad.lowrank(m) for m in ad.modules}, label=str(ad.path))
    return {"path": str(ad.path), "provenance": ad.provenance}
