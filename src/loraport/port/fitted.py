"""fit_map / apply_map: the anchor methods end to end, streaming one tensor at a time.

    fmap = fit_map(load_anchors("anchors.yaml"), "global_ridge", source_config, target_config)
    fmap.save("maps/qwen-to-llama")                       # map.json + state.safetensors
    apply_map(FittedMap.load("maps/qwen-to-llama"), "adapters/new-task", "out/new-task-llama")

Memory: adapters are read tensor by tensor; the largest objects held are N×N Grams per tensor and the
(N·r)² eigenbases of the target anchors that make every later port a small SVD (see SpanBasis).
A saved map references its anchor folders by path and SHA-256 (checked before each port), rather
than copying gigabytes of anchor weights.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from loraport import __version__
from loraport.adapters import Adapter, LowRank, load_adapter, refactor, save_adapter
from loraport.adapters.lowrank import SpanBasis, stack_rows
from loraport.arch import arch_for, layer_map
from loraport.errors import AnchorError, LoraportError, MethodError
from loraport.io import read_tensor_dir, sha256_file, write_tensor_dir
from loraport.port.anchors import AnchorsSpec, check_pair_tasks
from loraport.port.methods import PortMethod, get_method
from loraport.port.sides import Side, input_kernel, stacked_grams

MAP_JSON = "map.json"
MAP_STATE = "state.safetensors"
GLOBAL = "__global__"


@dataclass
class AnchorRecord:
    task: str
    source: str
    target: str
    source_sha256: str
    target_sha256: str


@dataclass
class FittedMap:
    """An anchor method fitted on anchor pairs: its per-scope state (from the N×N Grams), the
    tensor pairing and layer map between the bases, and the target anchors' span bases, so every
    later port is a weighted sum of target anchors and a small SVD. Saved as map.json +
    state.safetensors; the anchor adapters are referenced by path and SHA-256 (checked before
    each port), not copied.

        fmap = fit_map(load_anchors("anchors.yaml"), "global_ridge", source_config, target_config)
        fmap.save("maps/q2l")
        apply_map(FittedMap.load("maps/q2l"), "adapters/new", "out/new-llama")
    """

    method: str
    options: dict[str, Any]
    source_base: str
    target_base: str
    source_config: Any
    target_config: Any
    anchors: list[AnchorRecord]
    pairing: dict[str, str | None]  # target key -> source key (None: use the global Gram)
    layer_map: list[int]
    state: dict[str, dict[str, torch.Tensor]]  # scope key -> method state
    span: dict[str, SpanBasis]  # target key -> fast re-factoring basis
    rank: int
    alpha: float
    use_rslora: bool
    seed: int
    fit_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def anchor_set_hash(self) -> str:
        h = hashlib.sha256()
        for a in self.anchors:
            h.update(f"{a.task}\0{a.source_sha256}\0{a.target_sha256}\n".encode())
        return h.hexdigest()

    @property
    def n(self) -> int:
        return len(self.anchors)

    # -- persistence -----------------------------------------------------------------------------
    def save(self, out: str | Path, force: bool = False) -> Path:
        tensors: dict[str, torch.Tensor] = {}
        for scope, st in self.state.items():
            for name, t in st.items():
                tensors[f"state/{scope}/{name}"] = t.contiguous()
        for key, sb in self.span.items():
            for name, t in sb.state().items():
                # float32 on disk: the bases are orthonormal up to ~1e-7, far below port precision,
                # and a 3B map stays at a few hundred MB instead of twice that.
                tensors[f"span/{key}/{name}"] = t.float().contiguous()
        meta = {
            "format": "loraport-map/1",
            "loraport_version": __version__,
            "method": self.method,
            "options": self.options,
            "source_base": self.source_base,
            "target_base": self.target_base,
            "source_config": self.source_config.to_dict(),
            "target_config": self.target_config.to_dict(),
            "anchors": [a.__dict__ for a in self.anchors],
            "anchor_set_hash": self.anchor_set_hash,
            "pairing": self.pairing,
            "layer_map": self.layer_map,
            "span_ranks": {k: sb.ranks for k, sb in self.span.items()},
            "rank": self.rank,
            "alpha": self.alpha,
            "use_rslora": self.use_rslora,
            "seed": self.seed,
            "fit_seconds": self.fit_seconds,
            "extra": self.extra,
        }
        return write_tensor_dir(out, tensors, meta, json_name=MAP_JSON, state_name=MAP_STATE, force=force)

    @classmethod
    def load(cls, path: str | Path) -> FittedMap:
        from transformers import AutoConfig

        path = Path(path)
        meta, tensors = read_tensor_dir(
            path, json_name=MAP_JSON, state_name=MAP_STATE, error=LoraportError, what="a fitted map"
        )
        if meta.get("format") != "loraport-map/1":
            raise LoraportError(
                f"{path / MAP_JSON}: field format={meta.get('format')!r} is not loraport-map/1"
            )
        state: dict[str, dict[str, torch.Tensor]] = {}
        span_state: dict[str, dict[str, torch.Tensor]] = {}
        for name, t in tensors.items():
            kind, scope, key = name.split("/", 2)
            (state if kind == "state" else span_state).setdefault(scope, {})[key] = t
        configs = []
        for side in ("source_config", "target_config"):
            d = dict(meta[side])
            configs.append(AutoConfig.for_model(d.pop("model_type"), **d))
        return cls(
            method=meta["method"],
            options=meta["options"],
            source_base=meta["source_base"],
            target_base=meta["target_base"],
            source_config=configs[0],
            target_config=configs[1],
            anchors=[AnchorRecord(**a) for a in meta["anchors"]],
            pairing=meta["pairing"],
            layer_map=meta["layer_map"],
            state=state,
            span={k: SpanBasis.from_state(v, meta["span_ranks"][k]) for k, v in span_state.items()},
            rank=meta["rank"],
            alpha=meta["alpha"],
            use_rslora=meta["use_rslora"],
            seed=meta["seed"],
            fit_seconds=meta.get("fit_seconds", 0.0),
            extra=meta.get("extra", {}),
        )


def _output_format(ys: list[Adapter]) -> tuple[int, float, bool]:
    cfg = ys[0].config
    return int(cfg["r"]), float(cfg["lora_alpha"]), bool(cfg.get("use_rslora", False))


def fit_map(
    spec: AnchorsSpec,
    method: str | PortMethod,
    source_config: Any,
    target_config: Any,
    *,
    options: dict[str, Any] | None = None,
    seed: int = 0,
    layers: str = "relative",
    allow_pickle: bool = False,
) -> FittedMap:
    """Fit `method` on the anchor pairs. Configs are transformers configs of the two bases.
    `layers` names a registered layer map (arch.LAYER_MAPS) pairing target layers with source
    layers: "relative" (same relative depth, from the configs alone) or "cka" (CKA of both bases'
    hidden states on generic text; loads both, see port.layermaps)."""
    t0 = time.perf_counter()
    m = method if isinstance(method, PortMethod) else get_method(method, **(options or {}))
    if m.scope in ("none", "behaviour"):
        raise MethodError(
            f"method {m.name!r} needs no anchors and is not fitted; use it with `port` directly"
        )
    xs = [load_adapter(p.source, allow_pickle=allow_pickle) for p in spec.pairs]
    ys = [load_adapter(p.target, allow_pickle=allow_pickle) for p in spec.pairs]
    check_pair_tasks(spec, xs, ys)
    ax, ay = arch_for(source_config), arch_for(target_config)
    sx, sy = Side.build(ax, spec.source_base, xs), Side.build(ay, spec.target_base, ys)
    lmap = layer_map(
        ax.num_layers, ay.num_layers, layers, source_base=spec.source_base, target_base=spec.target_base
    )
    pairing: dict[str, str | None] = {}
    for key in sy.keys:
        layer, role = key.split(".", 1)
        src = f"{lmap[int(layer)]}.{role}"
        pairing[key] = src if src in sx.keys else None

    kx = {key: stacked_grams([sx.lowrank(a, key) for a in xs])[0] for key in sx.keys}
    ky, span = {}, {}
    for key in sy.keys:
        parts = [sy.lowrank(a, key) for a in ys]
        K, GB, GA = stacked_grams(parts)
        ky[key] = K
        span[key] = SpanBasis.from_grams(GB, GA, [p.rank for p in parts])
    kx_glob, ky_glob = sum(kx.values()), sum(ky.values())
    if m.scope == "global":
        state = m.fit_all({GLOBAL: (kx_glob, ky_glob)}, seed)
    else:
        grams = {key: (kx[src] if src else kx_glob, ky[key]) for key, src in pairing.items()}
        state = m.fit_all(grams, seed)
        state[GLOBAL] = {"Kx": kx_glob}  # whole-adapter Gram for Top-K selection
    rank, alpha, rslora = _output_format(ys)
    records = [
        AnchorRecord(
            p.task, str(p.source), str(p.target), sha256_file(x.weights_file), sha256_file(y.weights_file)
        )
        for p, x, y in zip(spec.pairs, xs, ys, strict=True)
    ]
    return FittedMap(
        m.name,
        m.options(),
        spec.source_base,
        spec.target_base,
        source_config,
        target_config,
        records,
        pairing,
        lmap,
        state,
        span,
        rank,
        alpha,
        rslora,
        seed,
        time.perf_counter() - t0,
    )


def _check_anchor(path: str, sha: str) -> Adapter:
    ad = load_adapter(path)
    if sha256_file(ad.weights_file) != sha:
        raise AnchorError(
            f"{ad.weights_file}: anchor changed since the map was fitted (SHA-256 differs); refit"
        )
    return ad


@dataclass
class PortInputs:
    """What a fitted map computes for one input adapter before anything is written: the anchors
    loaded on both sides, the weights over the target anchors per target tensor key, and the Top-K
    selection (None: all anchors)."""

    x: Adapter
    ys: list[Adapter]
    target_side: Side
    weights: dict[str, torch.Tensor]
    selected: torch.Tensor | None


def port_weights(
    fmap: FittedMap,
    adapter: str | Path | Adapter,
    *,
    verify_anchors: bool = True,
    allow_pickle: bool = False,
) -> PortInputs:
    """The weights over the target anchors that `fmap` predicts for `adapter`, per target tensor."""
    x = adapter if isinstance(adapter, Adapter) else load_adapter(adapter, allow_pickle=allow_pickle)
    m = get_method(fmap.method, **fmap.options)
    if verify_anchors:
        xs = [_check_anchor(a.source, a.source_sha256) for a in fmap.anchors]
        ys = [_check_anchor(a.target, a.target_sha256) for a in fmap.anchors]
    else:
        xs = [load_adapter(a.source) for a in fmap.anchors]
        ys = [load_adapter(a.target) for a in fmap.anchors]
    ax, ay = arch_for(fmap.source_config), arch_for(fmap.target_config)
    sx, sy = Side.build(ax, fmap.source_base, xs), Side.build(ay, fmap.target_base, ys)
    sx.check_same_modules(x)

    kin, kxx = {}, {}
    for key in sx.keys:
        xl = sx.lowrank(x, key)
        kin[key] = input_kernel(xl, [sx.lowrank(a, key) for a in xs])
        kxx[key] = xl.norm_sq()
    k_glob, kxx_glob = sum(kin.values()), sum(kxx.values())
    sel = m.select(fmap.state[GLOBAL]["Kx"], k_glob, kxx_glob)
    w_glob = m.weights(fmap.state[GLOBAL], k_glob, sel) if m.scope == "global" else None
    weights = {}
    for key in sy.keys:
        if w_glob is not None:
            weights[key] = w_glob
        else:
            src = fmap.pairing[key]
            weights[key] = m.weights(fmap.state[key], kin[src] if src else k_glob, sel)
    return PortInputs(x, ys, sy, weights, sel)


def combine_port(fmap: FittedMap, inputs: PortInputs, weights: dict[str, torch.Tensor]) -> dict[str, LowRank]:
    """Σ_j w_j ΔW_Y,j per target module at the map's rank (fused modules: parts stacked by rows)."""
    sy = inputs.target_side
    parts: dict[str, list[LowRank]] = {}
    for key, (module, _, _) in sy.keys.items():
        anchors = [sy.lowrank(a, key) for a in inputs.ys]
        parts.setdefault(module, []).append(fmap.span[key].combine(anchors, weights[key], fmap.rank))
    return {
        name: ps[0] if len(ps) == 1 else refactor(stack_rows(ps), fmap.rank) for name, ps in parts.items()
    }


def save_port(
    fmap: FittedMap,
    inputs: PortInputs,
    modules: dict[str, LowRank],
    out: str | Path,
    provenance: dict[str, Any],
    *,
    force: bool = False,
    base_model: str | None = None,
) -> Path:
    """Write a port of `fmap`'s target base with the map's provenance plus `provenance`."""
    x, sel = inputs.x, inputs.selected
    prov = {
        "method": fmap.method,
        "options": fmap.options,
        "source_base": fmap.source_base,
        "target_base": fmap.target_base,
        "anchor_set_hash": fmap.anchor_set_hash,
        "anchor_tasks": [a.task for a in fmap.anchors],
        "input_adapter": str(x.path),
        "input_sha256": sha256_file(x.weights_file),
        "seed": fmap.seed,
        **({"topk_selected": [fmap.anchors[i].task for i in sel.tolist()]} if sel is not None else {}),
        **provenance,
    }
    return save_adapter(
        out,
        modules,
        rank=fmap.rank,
        alpha=fmap.alpha,
        use_rslora=fmap.use_rslora,
        base_model=base_model or fmap.target_base,
        num_layers=arch_for(fmap.target_config).num_layers,
        provenance=prov,
        force=force,
    )


def apply_map(
    fmap: FittedMap,
    adapter: str | Path | Adapter,
    out: str | Path,
    *,
    force: bool = False,
    verify_anchors: bool = True,
    allow_pickle: bool = False,
    provenance: dict[str, Any] | None = None,
    base_model: str | None = None,
) -> Path:
    """Port one source adapter through a fitted map and write the PEFT folder for the target base
    (recorded as `base_model`, by default the map's target base)."""
    t0 = time.perf_counter()
    inputs = port_weights(fmap, adapter, verify_anchors=verify_anchors, allow_pickle=allow_pickle)
    modules = combine_port(fmap, inputs, inputs.weights)
    seconds = round(time.perf_counter() - t0, 4)
    cost = {
        "seconds": round(seconds + fmap.fit_seconds, 4),
        "steps": 0,
        "generated_tokens": 0,
        "data": "anchors",
    }
    extra = {"port_seconds": seconds, "cost": cost, **(provenance or {})}
    return save_port(fmap, inputs, modules, out, extra, force=force, base_model=base_model)


def copy_port(
    adapter: str | Path | Adapter,
    target_config: Any,
    target_base: str,
    out: str | Path,
    *,
    force: bool = False,
    allow_pickle: bool = False,
) -> Path:
    """`copy`: the same ΔW on a target whose modules have identical shapes (checked module by module)."""
    x = adapter if isinstance(adapter, Adapter) else load_adapter(adapter, allow_pickle=allow_pickle)
    ay = arch_for(target_config)
    ay.check_adapter(x, target_base)
    ranks = set(x.ranks.values())
    rank = max(ranks)
    cfg = x.config
    same = len(ranks) == 1
    alpha = float(cfg["lora_alpha"]) if same else float(rank)
    modules = {mod: x.lowrank(mod) if same else refactor(x.lowrank(mod), rank) for mod in x.modules}
    prov = {
        "method": "copy",
        "source_base": x.base_model,
        "target_base": target_base,
        "input_adapter": str(x.path),
        "input_sha256": sha256_file(x.weights_file),
    }
    return save_adapter(
        out,
        modules,
        rank=rank,
        alpha=alpha,
        use_rslora=bool(cfg.get("use_rslora")) and same,
        base_model=target_base,
        num_layers=ay.num_layers,
        provenance=prov,
        force=force,
    )
