"""The port-method registry. Each anchor method turns Gram matrices into weights over target anchors.

| method                | regresses on                                                | scope      |
|-----------------------|-------------------------------------------------------------|------------|
| mean                  | nothing: the average target anchor                          | global     |
| global_ridge          | whole flattened ΔW_X → whole ΔW_Y (kernel ridge, linear)    | global     |
| pertensor_ridge       | ΔW_X of the paired tensor → ΔW_Y of each tensor             | per tensor |
| topk_global_ridge     | as global_ridge, on the K anchors most cosine-similar       | global     |
| topk_pertensor_ridge  | as pertensor_ridge, on the K most similar (global cosine)   | per tensor |
| procrustes            | scaled orthogonal map between the centred anchor clouds     | global     |
| pertensor_pca         | top PCA coordinates of ΔW_X → of ΔW_Y, per tensor (ridge)   | per tensor |
| pertensor_mlp         | the same coordinates through a small MLP, per tensor        | per tensor |
| copy                  | identity, when source and target shapes are identical       | —          |

Behaviour methods (scope "behaviour", in port/behaviour.py) are not fitted on anchor Grams:

| method   | needs                                   | entry point                    |
|----------|-----------------------------------------|--------------------------------|
| align    | nothing: the two bases and generic text | port.align.align_port          |
| spanfit  | anchors + unlabeled prompts of the task | port.spanfit.spanfit_port      |
| distill  | unlabeled prompts of the task (+ init)  | port.distill.distill_port      |

Every method, anchor or behaviour, implements one protocol (PortMethod): `requires` (what it needs:
anchors, prompts, source_base, generic_text), `plan` (the cells it adds to a study plan: its port,
plus e.g. teacher answers or an init port), `run_cell` (computing those cells) and `port` (the
`loraport port` path). A new method is one module that subclasses PortMethod and registers itself
with `@register_method`; port/__init__.py imports it (see port/zero.py):

    @register_method
    class Zero(PortMethod):
        name = "zero"
        scope = "none"
        requires = frozenset()
        def plan(self, req): ...          # add cells through req.add, return the port's key
        def run_cell(self, cell, store): ...
        def port(self, job): ...

A tensor is a logical projection "layer.role" (fused qkv/gate_up are split by rows); a target tensor
at layer l pairs with the source tensor of the same role at the layer given by the layer map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from loraport.errors import MethodError, closest
from loraport.port import numerics as nx
from loraport.registry import Registry

if TYPE_CHECKING:
    from loraport.adapters import Adapter
    from loraport.bench.plan import Cell, PortRequest
    from loraport.bench.store import Store
    from loraport.port.fitted import FittedMap

#: What a method may need, for `requires` (documentation and `loraport methods`).
NEEDS = frozenset({"anchors", "prompts", "source_base", "generic_text"})


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class PortJob:
    """One `loraport.api.port` call as a method's `port` hook sees it (see that function)."""

    adapter: Adapter  # the input adapter, loaded
    target_base: str
    target_config: Any
    out: Path
    anchors: str | Path | None = None
    seed: int = 0
    force: bool = False
    allow_pickle: bool = False
    source_base: str | None = None
    task: str | None = None
    prompts: str | Path | None = None
    examples: str | Path | None = None  # a few example prompts to synthesize prompts from
    init: Path | None = None  # an init adapter folder (distill)
    eval_n: int = 300
    eval_seed: int = 0
    eval_data: str | Path | None = None
    progress: bool = False


class PortMethod:
    """The protocol every port method implements (the default hooks are those of the anchor
    methods: fit on anchor Grams, apply to the input).

    requires: what the method needs, a subset of NEEDS.
    plan(req): add the cells of one port to a study plan through `req` (a bench.plan.PortRequest);
      returns the key of the cell whose adapter is the port.
    run_cell(cell, store): compute a cell that `plan` added (its kind is the one given to req.add).
    port(job): the `loraport port` path; returns the output folder.
    """

    name: ClassVar[str]
    scope: ClassVar[Literal["global", "pertensor", "none", "behaviour"]] = "global"
    requires: ClassVar[frozenset[str]] = frozenset({"anchors"})
    needs: ClassVar[str] = "anchors"
    #: False when the weights ignore the input adapter (mean): its map then packs no source anchors.
    uses_input: ClassVar[bool] = True
    summary: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, **options: Any) -> None:
        try:
            self.opts = self.Options(**options)
        except ValidationError as e:
            err = e.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else "?"
            if err["type"] == "extra_forbidden":
                valid = list(self.Options.model_fields)
                hint = closest(field, valid) or (
                    f" (valid: {', '.join(valid)})" if valid else " (it takes none)"
                )
                raise MethodError(f"method {self.name!r} has no option {field!r}{hint}") from None
            raise MethodError(f"method {self.name!r}: option {field}: {err['msg']}") from None

    def options(self) -> dict[str, Any]:
        return self.opts.model_dump()

    # -- the protocol: a study plan, its cells, and `loraport port` ----------------------------
    def plan(self, req: PortRequest) -> str:
        """One "port" cell over the anchor pairs and the input; its key has the options as written
        in the study (not with defaults filled in)."""
        key = req.key(
            "port", self.name, req.options, req.seed, req.pairs, req.x_key, req.fp["target"], req.target
        )
        params = {**req.common, "pairs": req.pairs}
        return req.add("port", key, (req.x_key, *req.anchor_deps), params, f"port {req.label}")

    def run_cell(self, cell: Cell, store: Store) -> None:
        from loraport.models import load_config
        from loraport.port.apply import apply_map
        from loraport.port.fitted import fit_map

        p = cell.params
        spec = anchors_of(p, store)
        configs = load_config(p["source"]), load_config(p["target"])
        fmap = fit_map(spec, p["method"], *configs, options=p["options"], seed=p["seed"])
        prov = {"study_cell": cell.key, "task": p["task"]}
        out = store.adapter(cell.key)
        apply_map(fmap, store.adapter(p["x"]), out, force=True, provenance=prov)

    def port(self, job: PortJob) -> Path:
        from loraport.models import load_config
        from loraport.port.anchors import load_anchors
        from loraport.port.fitted import fit_map

        if job.anchors is None:
            raise MethodError("give --map, or --anchors with --method, or --method copy")
        spec = load_anchors(job.anchors)
        configs = load_config(spec.source_base), load_config(spec.target_base)
        fmap = fit_map(spec, self, *configs, seed=job.seed, allow_pickle=job.allow_pickle)
        return apply_to_target(fmap, job)

    # -- fitting: one state per scope key from the source and target Grams --------------------
    def fit_key(self, Kx: torch.Tensor, Ky: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"Kx": Kx, "Ky": Ky}

    def fit_all(self, grams: dict[str, tuple[torch.Tensor, torch.Tensor]], seed: int) -> dict[str, dict]:
        return {key: self.fit_key(Kx, Ky) for key, (Kx, Ky) in grams.items()}

    # -- applying -----------------------------------------------------------------------------
    def select(self, Kx: torch.Tensor, k: torch.Tensor, kxx: float) -> torch.Tensor | None:
        """Indices of the anchors this input uses (None: all)."""
        return None

    def weights(
        self, state: dict[str, torch.Tensor], k: torch.Tensor, sel: torch.Tensor | None
    ) -> torch.Tensor:
        return nx.linear_weights(state["T"], state["Kx"], k)


def anchors_of(params: dict[str, Any], store: Store) -> Any:
    """The AnchorsSpec of a planned port cell (its "pairs" of task, source key, target key)."""
    from loraport.port.anchors import AnchorPair, AnchorsSpec

    pairs = [
        AnchorPair(task=t, source=store.adapter(kx), target=store.adapter(ky))
        for t, kx, ky in params["pairs"]
    ]
    return AnchorsSpec(source_base=params["source"], target_base=params["target"], pairs=pairs)


def apply_to_target(fmap: FittedMap, job: PortJob) -> Path:
    """Apply a fitted map to the job's input, once the job's target base is checked to have the
    module shapes of the map's target base."""
    from loraport.port.apply import apply_map

    fmap.check_target(job.target_config, job.target_base)
    return apply_map(fmap, job.adapter, job.out, force=job.force, base_model=job.target_base)


#: Port methods by name: PortMethod subclasses, registered with `@register_method`.
#:
#:     get_method("topk_global_ridge", k=4).options()   # {'ridge': 'auto', 'k': 4}
#:     sorted(METHODS.get("distill").requires)           # ['prompts', 'source_base']
METHODS: Registry[type[PortMethod]] = Registry("port method", MethodError)


def get_method(name: str, **options: Any) -> PortMethod:
    """An instance of the registered method `name` with its options checked (MethodError names
    the closest valid option or method)."""
    return METHODS.get(name)(**options)


def register_method(cls: type[PortMethod]) -> type[PortMethod]:
    """Class decorator: register a PortMethod subclass under its `name`."""
    unknown = set(cls.requires) - NEEDS
    if unknown:
        raise ValueError(
            f"port method {cls.name!r} requires unknown {sorted(unknown)} (known: {sorted(NEEDS)})"
        )
    METHODS.add(cls.name, cls)
    return cls


_register = register_method


@_register
class Mean(PortMethod):
    name = "mean"
    uses_input = False
    summary = "average of the target anchors; ignores the input (the baseline every method must beat)"

    def fit_key(self, Kx, Ky):
        return {"Kx": Kx}

    def weights(self, state, k, sel):
        n = len(k)
        return torch.full((n,), 1.0 / n, dtype=torch.float64)


class RidgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # "auto": relative penalty chosen per fitted Gram by exact leave-one-out error over the anchors
    # (grid 1e-4 … 1e2 × mean eigenvalue); a float fixes it.
    ridge: float | Literal["auto"] = "auto"


class _Ridge(PortMethod):
    Options = RidgeOptions

    def fit_key(self, Kx, Ky):
        lam = nx.choose_ridge(Kx, Ky) if self.opts.ridge == "auto" else float(self.opts.ridge)
        return {"Kx": Kx, "Ky": Ky, "T": nx.ridge_T(Kx, lam), "lam": torch.tensor(lam, dtype=torch.float64)}


@_register
class GlobalRidge(_Ridge):
    name = "global_ridge"
    summary = "kernel ridge from the whole flattened source ΔW to the whole target ΔW"


@_register
class PertensorRidge(_Ridge):
    name = "pertensor_ridge"
    scope = "pertensor"
    summary = "one kernel ridge per target tensor, on the paired source tensor"


class TopKOptions(RidgeOptions):
    k: int = 8


class _TopK(_Ridge):
    Options = TopKOptions

    def select(self, Kx, k, kxx):
        if self.opts.k > len(k):
            raise MethodError(f"method {self.name!r}: option k={self.opts.k} exceeds the {len(k)} anchors")
        return torch.argsort(nx.cosine(Kx, k, kxx), descending=True, stable=True)[: self.opts.k]

    def fit_key(self, Kx, Ky):
        if self.opts.k < 2:
            raise MethodError(f"method {self.name!r}: option k={self.opts.k} must be at least 2")
        if self.opts.k > len(Kx):
            raise MethodError(f"method {self.name!r}: option k={self.opts.k} exceeds the {len(Kx)} anchors")
        return {"Kx": Kx, "Ky": Ky}

    def weights(self, state, k, sel):
        Kx, Ky = state["Kx"][sel][:, sel], state["Ky"][sel][:, sel]
        lam = nx.choose_ridge(Kx, Ky) if self.opts.ridge == "auto" else float(self.opts.ridge)
        w_sub = nx.linear_weights(nx.ridge_T(Kx, lam), Kx, k[sel])
        return torch.zeros(len(k), dtype=torch.float64).index_copy(0, sel, w_sub)


@_register
class TopKGlobalRidge(_TopK):
    name = "topk_global_ridge"
    summary = "global ridge on the K anchors whose source adapters are most cosine-similar to the input"


@_register
class TopKPertensorRidge(_TopK):
    name = "topk_pertensor_ridge"
    scope = "pertensor"
    summary = "per-tensor ridge on the K anchors most cosine-similar to the input (whole-adapter cosine)"


class ProcrustesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scale: bool = True  # also fit one scale factor (adapter norms differ between bases)


@_register
class Procrustes(PortMethod):
    name = "procrustes"
    summary = "scaled orthogonal map between the centred source and target anchor clouds"
    Options = ProcrustesOptions

    def fit_key(self, Kx, Ky):
        return {"Kx": Kx, "T": nx.procrustes_T(Kx, Ky, self.opts.scale)}


class PCAOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    components: int = 8  # capped at N−1, the rank of a centred cloud of N anchors
    ridge: float = 1e-3


@_register
class PertensorPCA(PortMethod):
    name = "pertensor_pca"
    scope = "pertensor"
    summary = "per tensor: ridge from the source PCA coordinates to the target PCA coordinates"
    Options = PCAOptions

    def fit_key(self, Kx, Ky):
        return {"Kx": Kx, "T": nx.pca_T(Kx, Ky, self.opts.components, self.opts.ridge)}


class MLPOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    components: int = 8
    hidden: int = 32
    steps: int = 500
    lr: float = 1e-2
    weight_decay: float = 1e-3


@_register
class PertensorMLP(PortMethod):
    """A tanh MLP per tensor from source to target PCA coordinates. All tensors' MLPs are trained
    together as one batched model (independent weights, one optimiser), seeded."""

    name = "pertensor_mlp"
    scope = "pertensor"
    summary = "per tensor: a small MLP from source PCA coordinates to target PCA coordinates"
    Options = MLPOptions

    def fit_all(self, grams, seed):
        keys = list(grams)
        n = len(next(iter(grams.values()))[0])
        p = max(1, min(self.opts.components, n - 1))
        H = nx.centering(n)
        pin, pout, zxs, zys = [], [], [], []
        for key in keys:
            Kx, Ky = grams[key]
            lx, vx = nx.eig_pos(H @ Kx @ H, p)
            ly, vy = nx.eig_pos(H @ Ky @ H, p)
            a = torch.zeros(p, n, dtype=torch.float64)
            a[: len(lx)] = (vx / lx.sqrt()).T  # z_x = a·k̃(x)
            b = torch.zeros(n, p, dtype=torch.float64)
            b[:, : len(ly)] = vy / ly.sqrt()  # c = b·z_y
            zy = torch.zeros(n, p, dtype=torch.float64)
            zy[:, : len(ly)] = vy * ly.sqrt()
            zxs.append(a @ (H @ Kx @ H))  # anchors' own coordinates, (p × n)
            zys.append(zy)
            pin.append(a)
            pout.append(b)
        zx = torch.stack(zxs).transpose(1, 2).float()  # (T, n, p)
        zy = torch.stack(zys).float()
        sx = zx.std(1, keepdim=True).clamp_min(1e-12)
        sy = zy.std(1, keepdim=True).clamp_min(1e-12)
        gen = torch.Generator().manual_seed(seed)
        T, h = len(keys), self.opts.hidden
        params = [
            (torch.randn(T, p, h, generator=gen) / p**0.5).requires_grad_(),
            torch.zeros(T, 1, h, requires_grad=True),
            (torch.randn(T, h, p, generator=gen) / h**0.5).requires_grad_(),
            torch.zeros(T, 1, p, requires_grad=True),
        ]
        opt = torch.optim.Adam(params, lr=self.opts.lr, weight_decay=self.opts.weight_decay)
        for _ in range(self.opts.steps):
            opt.zero_grad()
            pred = _mlp(params, zx / sx)
            loss = ((pred - zy / sy) ** 2).mean()
            loss.backward()
            opt.step()
        out = {}
        for i, key in enumerate(keys):
            out[key] = {
                "Kx": grams[key][0],
                "pin": pin[i],
                "pout": pout[i],
                "sx": sx[i].double(),
                "sy": sy[i].double(),
                "w1": params[0][i].detach().double(),
                "b1": params[1][i].detach().double(),
                "w2": params[2][i].detach().double(),
                "b2": params[3][i].detach().double(),
            }
        return out

    def weights(self, state, k, sel):
        zx = (state["pin"] @ nx.centred_kernel(state["Kx"], k))[None] / state["sx"]
        hid = torch.tanh(zx @ state["w1"] + state["b1"])
        zy = ((hid @ state["w2"] + state["b2"]) * state["sy"])[0]
        return nx.weights_from_coeffs(state["pout"] @ zy)


def _mlp(params, x):
    w1, b1, w2, b2 = params
    return torch.tanh(x @ w1 + b1) @ w2 + b2


@_register
class Copy(PortMethod):
    name = "copy"
    scope = "none"
    requires = frozenset()
    needs = "nothing (source and target must have identical module shapes)"
    summary = "the input adapter unchanged, for bases with identical shapes"

    def plan(self, req):
        key = req.key("port", self.name, req.x_key, req.fp["target"], req.target)
        return req.add("port", key, (req.x_key,), req.common, f"port {req.task} copy")

    def run_cell(self, cell, store):
        from loraport.models import load_config
        from loraport.port.apply import copy_port

        p = cell.params
        copy_port(
            store.adapter(p["x"]), load_config(p["target"]), p["target"], store.adapter(cell.key), force=True
        )

    def port(self, job):
        from loraport.port.apply import copy_port

        return copy_port(job.adapter, job.target_config, job.target_base, job.out, force=job.force)
