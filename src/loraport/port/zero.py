"""`zero`: the port that transfers nothing, a zero ΔW on every module of the target base (the
target base unchanged, reached through the port path: a floor next to `mean`).

The example of a method added as one module: it registers itself, says what it needs, plans its
one cell, computes it, and serves `loraport port --method zero`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from loraport.adapters import Adapter, LowRank, load_adapter, save_adapter
from loraport.arch import arch_for
from loraport.port.methods import PortMethod, register_method


def zero_port(
    adapter: str | Path | Adapter,
    target_config: Any,
    target_base: str,
    out: str | Path,
    *,
    force: bool = False,
) -> Path:
    """A target adapter of the input's rank and alpha whose every ΔW is zero."""
    x = adapter if isinstance(adapter, Adapter) else load_adapter(adapter)
    ay = arch_for(target_config)
    rank = max(x.ranks.values())
    modules = {
        m.name: LowRank(torch.zeros(m.shape[0], rank), torch.zeros(rank, m.shape[1])) for m in ay.modules()
    }
    return save_adapter(
        out,
        modules,
        rank=rank,
        alpha=float(x.config["lora_alpha"]),
        base_model=target_base,
        num_layers=ay.num_layers,
        provenance={"method": "zero", "source_base": x.base_model, "target_base": target_base},
        force=force,
    )


@register_method
class Zero(PortMethod):
    name = "zero"
    scope = "none"
    requires = frozenset()
    needs = "nothing"
    summary = "a zero ΔW on every target module: the target base unchanged, through the port path"

    def plan(self, req):
        key = req.key("port", self.name, req.x_key, req.fp["target"], req.target)
        return req.add("port", key, (req.x_key,), req.common, f"port {req.task} zero")

    def run_cell(self, cell, store):
        from loraport.models import load_config

        p = cell.params
        zero_port(
            store.adapter(p["x"]), load_config(p["target"]), p["target"], store.adapter(cell.key), force=True
        )

    def port(self, job):
        return zero_port(job.adapter, job.target_config, job.target_base, job.out, force=job.force)
