"""fit_map and FittedMap: an anchor method fitted on anchor pairs, saved as a map folder.

    fmap = fit_map(load_anchors("anchors.yaml"), "global_ridge", source_config, target_config)
    fmap.save("maps/qwen-to-llama")     # map.json + map.safetensors + README.md (see port.mapfile)
    apply_map(FittedMap.load("maps/qwen-to-llama"), "adapters/new-task", "out/new-task-llama")  # port.apply

A fitted map holds everything a port needs: the method's state (from the anchors' N×N Grams), the
layer map and tensor pairing, and the anchors' factors packed in float16 (see port.packing). A map
folder can therefore be moved or shared without its anchors, and a port reads it once, front to
back: the source anchors' factors give the input's kernel, the method turns that into weights over
the target anchors, and the target bases turn the weights into the output's rank-r factors.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from loraport import __version__
from loraport.adapters import Adapter, load_adapter
from loraport.arch import Arch, arch_for, layer_map
from loraport.errors import LoraportError, MethodError
from loraport.io import atomic_dir, sha256_file
from loraport.parallel import torch_threads
from loraport.port.anchors import AnchorsSpec, check_pair_tasks
from loraport.port.mapfile import (
    FORMAT,
    HASH_FIELD,
    MAP_CARD,
    MAP_JSON,
    MAP_TENSORS,
    MapError,
    open_map,
    remember_verified,
    write_map,
)
from loraport.port.methods import PortMethod, get_method
from loraport.port.packing import (
    pack_source,
    pack_target,
)
from loraport.port.sides import Side

GLOBAL = "__global__"
SIDES = ("source", "target")
SOURCE_PARTS = ("Bt", "A", "bs", "as_")
TARGET_PARTS = ("QB", "RB", "QA", "RA")


@dataclass
class AnchorRecord:
    task: str
    source_sha256: str
    target_sha256: str
    source: str | None = None  # where the anchor was at fit time (a port never reads it)
    target: str | None = None


class MemoryTensors:
    """A freshly fitted map's packed tensors in memory, read like mapfile.MappedTensors."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def get(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def release(self, names: Any) -> None:
        pass

    def check(self) -> None:
        pass


class ConfigView:
    """A base's config as a map header stores it (config.to_dict()), read by attribute."""

    def __init__(self, d: dict[str, Any]) -> None:
        self._d = d
        for k, v in d.items():
            setattr(self, k, ConfigView(v) if isinstance(v, dict) and "model_type" in v else v)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._d)


def _config(d: dict[str, Any], fingerprint: str) -> Any:
    """The config for a stored dict. A ConfigView when it gives the architecture the map was fitted
    with (the usual case: it spares a port the seconds transformers takes to import a model
    family's config class), else the transformers config class."""
    try:
        view = ConfigView(d)
        if arch_fingerprint(arch_for(view)) == fingerprint:
            return view
    except LoraportError:
        pass
    from transformers import AutoConfig

    d = dict(d)
    return AutoConfig.for_model(d.pop("model_type"), **d)


def arch_fingerprint(arch: Arch) -> str:
    """SHA-256 of what a map's numbers depend on in a base: its LoRA-able modules and their shapes."""
    mods = [[m.name, list(m.shape)] for m in arch.modules()]
    return hashlib.sha256(json.dumps([arch.family.name, mods]).encode()).hexdigest()


@dataclass
class FittedMap:
    """An anchor method fitted on anchor pairs, with the anchors' factors packed so that it ports
    on its own (see the module docstring). `save` writes a map folder, `load` memory-maps one.

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
    source_modules: list[str]
    target_modules: list[str]
    source_ranks: dict[str, list[int]]  # packed source key -> anchor ranks (empty: input not used)
    target_ranks: dict[str, list[int]]  # packed target key -> anchor ranks
    tensors: Any  # MemoryTensors, or mapfile.MappedTensors for a loaded map
    rank: int
    alpha: float
    use_rslora: bool
    seed: int
    fingerprints: dict[str, dict[str, str | None]]
    fit_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    content_sha256: str | None = None

    @property
    def anchor_set_hash(self) -> str:
        h = hashlib.sha256()
        for a in self.anchors:
            h.update(f"{a.task}\0{a.source_sha256}\0{a.target_sha256}\n".encode())
        return h.hexdigest()

    @property
    def n(self) -> int:
        return len(self.anchors)

    @property
    def where(self) -> str:
        return str(self.path / MAP_JSON) if self.path else "the fitted map"

    def side(self, which: str) -> Side:
        """The source or target side as the anchors adapt it (no adapter needed)."""
        config, base, names = (
            (self.source_config, self.source_base, self.source_modules)
            if which == "source"
            else (self.target_config, self.target_base, self.target_modules)
        )
        arch = arch_for(config)
        return Side.of_modules(arch, base, {n: arch.parse(n) for n in names})

    def check_target(self, target_config: Any, target_base: str) -> None:
        """A target base must have the module shapes of the base the map was fitted for."""
        if arch_fingerprint(arch_for(target_config)) != self.fingerprints["target"]["arch"]:
            raise MapError(
                f"{self.where}: field fingerprints.target.arch: --target-base {target_base}: its modules "
                f"differ in shape from those of {self.target_base}, the base the map was fitted for"
            )

    # -- persistence -----------------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "loraport_version": __version__,
            "method": self.method,
            "options": self.options,
            "source_base": self.source_base,
            "target_base": self.target_base,
            "fingerprints": self.fingerprints,
            "n": self.n,
            "anchors": [asdict(a) for a in self.anchors],
            "anchor_set_hash": self.anchor_set_hash,
            "rank": self.rank,
            "alpha": self.alpha,
            "use_rslora": self.use_rslora,
            "seed": self.seed,
            "fit_seconds": round(self.fit_seconds, 3),
            "layer_map": self.layer_map,
            "pairing": self.pairing,
            "source_modules": self.source_modules,
            "target_modules": self.target_modules,
            "source_ranks": self.source_ranks,
            "target_ranks": self.target_ranks,
            "source_config": self.source_config.to_dict(),
            "target_config": self.target_config.to_dict(),
            "extra": self.extra,
        }

    def save(self, out: str | Path, force: bool = False) -> Path:
        """Write the map folder atomically (a loaded map is copied file by file)."""
        from loraport.port.mapinfo import render_card

        out = Path(out)
        with atomic_dir(out, force=force) as tmp:
            if isinstance(self.tensors, MemoryTensors):
                meta = self.header()
                tensors = {
                    f"state/{scope}/{name}": t.double()
                    for scope, st in self.state.items()
                    for name, t in st.items()
                }
                tensors.update(self.tensors.tensors)
                write_map(tmp, meta, tensors, render_card)
                digest = meta[HASH_FIELD]
            else:
                for name in (MAP_JSON, MAP_TENSORS, MAP_CARD):
                    shutil.copyfile(self.path / name, tmp / name)
                digest = self.content_sha256
        if isinstance(self.tensors, MemoryTensors):
            self.path, self.content_sha256 = out, digest
            remember_verified(out / MAP_TENSORS, digest)  # hashed while written: ports need not
        return out

    @classmethod
    def load(cls, path: str | Path) -> FittedMap:
        """Open a map folder: the header is checked now, the tensors' hash while a port reads them."""
        path = Path(path)
        meta, tensors = open_map(path)
        try:
            state: dict[str, dict[str, torch.Tensor]] = {}
            for name in tensors.names():
                if name.startswith("state/"):
                    _, scope, key = name.split("/", 2)
                    state.setdefault(scope, {})[key] = tensors.get(name).clone()
            configs = [_config(meta[f"{side}_config"], meta["fingerprints"][side]["arch"]) for side in SIDES]
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
                source_modules=meta["source_modules"],
                target_modules=meta["target_modules"],
                source_ranks=meta["source_ranks"],
                target_ranks=meta["target_ranks"],
                tensors=tensors,
                rank=meta["rank"],
                alpha=meta["alpha"],
                use_rslora=meta["use_rslora"],
                seed=meta["seed"],
                fingerprints=meta["fingerprints"],
                fit_seconds=meta.get("fit_seconds", 0.0),
                extra=meta.get("extra", {}),
                path=path,
                content_sha256=meta[HASH_FIELD],
            )
        except KeyError as e:
            raise MapError(f"{path / MAP_JSON}: field {e.args[0]} missing") from None


def _output_format(ys: list[Adapter]) -> tuple[int, float, bool]:
    cfg = ys[0].config
    return int(cfg["r"]), float(cfg["lora_alpha"]), bool(cfg.get("use_rslora", False))


def _pack(m: PortMethod, sx: Side, sy: Side, xs: list[Adapter], ys: list[Adapter]) -> tuple:
    """(source Grams, target Grams, packed tensors, source ranks, target ranks), in the order a
    port reads them: source keys (for the input's kernel), then target keys. Two keys at a time on
    two threads (torch runs each op on one thread and releases the GIL)."""
    jobs = [("s", key) for key in sx.keys] if m.uses_input else []
    jobs += [("t", key) for key in sy.keys]

    def one(job: tuple[str, str]) -> tuple:
        side, key = job
        parts = [sx.lowrank(a, key) for a in xs] if side == "s" else [sy.lowrank(a, key) for a in ys]
        K, packed = (pack_source if side == "s" else pack_target)(parts)
        return side, key, [p.rank for p in parts], K, packed

    tensors: dict[str, torch.Tensor] = {}
    grams: dict[str, dict] = {"s": {}, "t": {}}
    ranks: dict[str, dict] = {"s": {}, "t": {}}
    with ThreadPoolExecutor(2) as pool:
        for side, key, rk, K, packed in pool.map(one, jobs):
            grams[side][key], ranks[side][key] = K, rk
            names = SOURCE_PARTS if side == "s" else TARGET_PARTS
            tensors.update({f"{side}/{key}/{name}": packed[name] for name in names})
    return grams["s"], grams["t"], tensors, ranks["s"], ranks["t"]


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
    weight_fingerprints: tuple[str | None, str | None] = (None, None),
) -> FittedMap:
    """Fit `method` on the anchor pairs and pack the anchors' factors. Configs are transformers
    configs of the two bases; `weight_fingerprints` (source, target) are recorded when known.
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

    # One thread hashes the anchors (provenance) while two pack them with single-threaded torch ops:
    # the cores stay busy without OpenMP threads spinning against each other (ruinous on a shared
    # machine), and results do not depend on the core count.
    with ThreadPoolExecutor(1) as hasher, torch_threads(1):
        digests = [hasher.submit(sha256_file, a.weights_file) for a in (*xs, *ys)]
        kx, ky, tensors, sranks, tranks = _pack(m, sx, sy, xs, ys)
        n = len(xs)
        kx_glob = sum(kx.values()) if kx else torch.zeros(n, n, dtype=torch.float64)
        ky_glob = sum(ky.values())
        if m.scope == "global":
            state = m.fit_all({GLOBAL: (kx_glob, ky_glob)}, seed)
        else:
            grams = {key: (kx[src] if src else kx_glob, ky[key]) for key, src in pairing.items()}
            state = m.fit_all(grams, seed)
            state[GLOBAL] = {"Kx": kx_glob}  # whole-adapter Gram for Top-K selection
        shas = [d.result() for d in digests]
    rank, alpha, rslora = _output_format(ys)
    records = [
        AnchorRecord(p.task, shas[i], shas[n + i], str(p.source), str(p.target))
        for i, p in enumerate(spec.pairs)
    ]
    fingerprints = {
        "source": {"arch": arch_fingerprint(ax), "weights": weight_fingerprints[0]},
        "target": {"arch": arch_fingerprint(ay), "weights": weight_fingerprints[1]},
    }
    return FittedMap(
        method=m.name,
        options=m.options(),
        source_base=spec.source_base,
        target_base=spec.target_base,
        source_config=source_config,
        target_config=target_config,
        anchors=records,
        pairing=pairing,
        layer_map=lmap,
        state=state,
        source_modules=list(sx.modules),
        target_modules=list(sy.modules),
        source_ranks=sranks,
        target_ranks=tranks,
        tensors=MemoryTensors(tensors),
        rank=rank,
        alpha=alpha,
        use_rslora=rslora,
        seed=seed,
        fingerprints=fingerprints,
        fit_seconds=time.perf_counter() - t0,
    )
