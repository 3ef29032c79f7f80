"""`align`: a data-free port that needs nothing but the two base models and generic text.

    al = fit_alignment("tiny-qwen2-x", "tiny-llama-y")      # both bases read 256 corpus lines
    apply_alignment(al, "adapters/x-task", "out/y-task")    # any number of adapters, milliseconds each
    align_port("tiny-qwen2-x", "tiny-llama-y", "adapters/x-task", "out/y-task")  # fit (memoised) + apply

No anchors, no task data, no training. Both bases run once over the same lines of the embedded
pretraining corpus (or caller-given text), each through its own tokenizer; token positions pair where
both tokens end at the same character (see `loraport.port.activations`). Cost: two forward passes of
each base over the text, plus one ridge solve per (source layer, role); the stored maps hold
in_x·in_y + out_x·out_y numbers per (source layer, role).

Layers: linear CKA(X, Y) = ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) of the centred layer outputs at paired
positions, then a monotone (non-decreasing) map of every source layer to a target layer maximising
the total CKA. A target layer's update is the sum of the ported updates of its source layers.

Modules pair by role (q, k, v, o, gate, up, down). For ΔW_X = B·A the port is ΔW_Y = (P·B)(A·Q),
re-factored to the input's rank, with ridge least squares (λ = ridge·trace(C)/d of the regressor
covariance C, float64):
    Q (in_x × in_y):  U_x ≈ U_y Qᵀ   on paired module inputs;
    P (out_y × out_x): V_y ≈ V_x Pᵀ  on paired module outputs (a fused module's role rows).
An expanding projection (out > in, e.g. gate/up) has rank-deficient outputs, on which P would only
see the column space of the base weight; its output space is then read where a module of the same
layer consumes it (down_proj's input for the "mlp" space), which is full rank.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from loraport import __version__
from loraport.adapters import Adapter, LowRank, concat, load_adapter, refactor, save_adapter
from loraport.adapters.lowrank import stack_rows
from loraport.arch import Arch, ModuleInfo, Part, arch_for
from loraport.device import resolve_device
from loraport.errors import AdapterError, MethodError
from loraport.io import read_tensor_dir, sha256_file, write_tensor_dir
from loraport.port.activations import Encoded, capture, generic_texts, pair_tokens

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Base = str | os.PathLike[str] | tuple["PreTrainedModel", "PreTrainedTokenizerBase"]
Key = tuple[int, int, str]  # (target layer, source layer, role)

ALIGN_JSON = "alignment.json"
ALIGN_STATE = "alignment.safetensors"
FORMAT = "loraport-alignment/1"
CKA_POSITIONS = 2048  # paired positions used for the layer map (CKA costs n² memory per layer)
RIDGE = 1.0  # relative ridge of the P/Q regressions (smaller ones blow ported updates up: see README)


# -- layer map ---------------------------------------------------------------------------------
def cka_matrix(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
    """Linear CKA of every pair (xs[i], ys[j]) of (n × d) activations at the same n positions,
    computed from the centred n×n Grams (⟨XXᵀ, YYᵀ⟩ = ‖YᵀX‖²_F). Float64, len(xs) × len(ys)."""

    def unit_gram(h: torch.Tensor) -> torch.Tensor:
        h = h.double() - h.double().mean(0)
        k = h @ h.T
        return k / k.norm().clamp_min(1e-300)

    ky = [unit_gram(h) for h in ys]
    return torch.stack([torch.stack([(kx * k).sum() for k in ky]) for kx in map(unit_gram, xs)])


def monotone_layer_map(cka: torch.Tensor) -> list[int]:
    """source layer -> target layer, non-decreasing, maximising Σ cka[m, map[m]] (dynamic program;
    ties go to the earlier target layer)."""
    score = cka.double().tolist()
    best, back = score[0], []
    for row in score[1:]:
        arg, j = [], 0
        for t in range(len(best)):
            j = t if best[t] > best[j] else j
            arg.append(j)  # best target of the previous source layers, at or before t
        back.append(arg)
        best = [row[t] + best[arg[t]] for t in range(len(row))]
    path = [max(range(len(best)), key=lambda t: (best[t], -t))]
    for arg in reversed(back):
        path.append(arg[path[-1]])
    return path[::-1]


# -- the fitted alignment ----------------------------------------------------------------------
@dataclass
class Alignment:
    """Everything `align` learns from two bases: the layer map and, per (target layer, source layer,
    role), P (out_y × out_x) and Q (in_x × in_y)."""

    source: str
    target: str
    source_config: Any
    target_config: Any
    layer_map: list[int]  # source layer -> target layer
    cka: torch.Tensor  # (source layers × target layers)
    maps: dict[Key, tuple[torch.Tensor, torch.Tensor]]  # key -> (P, Q)
    n_pairs: int
    options: dict[str, Any]
    seconds: float

    def save(self, path: str | Path, force: bool = False) -> Path:
        tensors = {"cka": self.cka.contiguous()}
        for (t, s, role), (P, Q) in self.maps.items():
            tensors[f"P/{t}/{s}/{role}"] = P.contiguous()
            tensors[f"Q/{t}/{s}/{role}"] = Q.contiguous()
        meta = {
            "format": FORMAT,
            "loraport_version": __version__,
            "source": self.source,
            "target": self.target,
            "source_config": self.source_config.to_dict(),
            "target_config": self.target_config.to_dict(),
            "layer_map": self.layer_map,
            "n_pairs": self.n_pairs,
            "options": self.options,
            "seconds": self.seconds,
        }
        return write_tensor_dir(
            path, tensors, meta, json_name=ALIGN_JSON, state_name=ALIGN_STATE, force=force
        )

    @classmethod
    def load(cls, path: str | Path) -> Alignment:
        from transformers import AutoConfig

        path = Path(path)
        meta, tensors = read_tensor_dir(
            path, json_name=ALIGN_JSON, state_name=ALIGN_STATE, error=MethodError, what="an alignment"
        )
        if meta.get("format") != FORMAT:
            raise MethodError(f"{path / ALIGN_JSON}: field format={meta.get('format')!r} is not {FORMAT}")
        configs = []
        for side in ("source_config", "target_config"):
            d = dict(meta[side])
            configs.append(AutoConfig.for_model(d.pop("model_type"), **d))
        maps = {}
        for name in tensors:
            if name.startswith("P/"):
                _, t, s, role = name.split("/")
                maps[(int(t), int(s), role)] = (tensors[name], tensors[f"Q/{t}/{s}/{role}"])
        return cls(
            meta["source"],
            meta["target"],
            configs[0],
            configs[1],
            meta["layer_map"],
            tensors["cka"],
            maps,
            meta["n_pairs"],
            meta["options"],
            meta["seconds"],
        )


# -- fitting -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tap:
    """Activations of one module at the paired positions: its input, or rows of its output."""

    module: str
    kind: str  # "in" | "out"
    start: int = 0
    stop: int | None = None

    def take(self, acts: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]) -> torch.Tensor:
        return acts[0][self.module] if self.kind == "in" else acts[1][self.module][:, self.start : self.stop]


class _Ridge:
    """Sufficient statistics RᵀR and RᵀT over batches for the ridge regression T ≈ R·W."""

    def __init__(self) -> None:
        self.g: torch.Tensor | None = None
        self.c: torch.Tensor | None = None

    def add(self, r: torch.Tensor, t: torch.Tensor) -> None:
        g, c = r.T @ r, r.T @ t
        self.g, self.c = (g, c) if self.g is None else (self.g + g, self.c + c)

    def solve(self, ridge: float) -> torch.Tensor:
        d = self.g.shape[0]
        lam = ridge * float(self.g.diagonal().sum()) / d or ridge
        return torch.linalg.solve(self.g + lam * torch.eye(d, dtype=self.g.dtype), self.c)


def _layer(arch: Arch, layer: int) -> tuple[dict[str, tuple[ModuleInfo, Part]], dict[str, ModuleInfo]]:
    """A layer's roles -> (module, part), and spaces -> the first module reading them as input."""
    infos = [i for i in arch.modules() if i.layer == layer]
    readers: dict[str, ModuleInfo] = {}
    for i in infos:
        readers.setdefault(i.in_space, i)
    return {p.role: (i, p) for i in infos for p in i.parts}, readers


def _links(ax: Arch, ay: Arch, lmap: list[int]) -> dict[Key, tuple[_Tap, _Tap, _Tap, _Tap]]:
    """Per (target layer, source layer, role): the taps (in_y, in_x) for Q and (out_x, out_y) for P."""
    links = {}
    for s, t in enumerate(lmap):
        (rx, readx), (ry, ready) = _layer(ax, s), _layer(ay, t)
        for role in rx.keys() & ry.keys():
            (ix, px), (iy, py) = rx[role], ry[role]
            expanding = px.stop - px.start > ix.shape[1] or py.stop - py.start > iy.shape[1]
            cx, cy = readx.get(px.out_space), ready.get(py.out_space)
            if expanding and cx and cy:
                out_x, out_y = _Tap(cx.name, "in"), _Tap(cy.name, "in")
            else:
                out_x, out_y = (
                    _Tap(ix.name, "out", px.start, px.stop),
                    _Tap(iy.name, "out", py.start, py.stop),
                )
            links[(t, s, role)] = (_Tap(iy.name, "in"), _Tap(ix.name, "in"), out_x, out_y)
    return links


def _load(base: Base, device: str | None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    if isinstance(base, tuple):
        model, tok = base
        label = model.config.name_or_path or model.config.model_type
    else:
        from loraport.models import load_model

        model, tok, _ = load_model(base, device=device)
        label = str(base)
    if tok is None or not tok.is_fast:
        raise MethodError(f"align: base {label} has no fast tokenizer (character offsets pair the tokens)")
    return model, tok, label


def _pad_id(tok: PreTrainedTokenizerBase) -> int:
    return tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)


def _layer_name(arch: Arch, layer: int) -> str:
    return arch.family.layer_prefix.format(layer=layer).rstrip(".")


def _layer_states(
    model: PreTrainedModel, arch: Arch, batches: Sequence[Sequence[Encoded]], pad: int
) -> list[torch.Tensor]:
    """Each layer's output at the first CKA_POSITIONS paired positions."""
    names = [_layer_name(arch, i) for i in range(arch.num_layers)]
    states: list[list[torch.Tensor]] = [[] for _ in names]
    got = 0
    for b in batches:
        _, outs = capture(model, b, pad, outputs=names)
        for acc, name in zip(states, names, strict=True):
            acc.append(outs[name])
        got += len(outs[names[0]])
        if got >= CKA_POSITIONS:
            break
    return [torch.cat(acc)[:CKA_POSITIONS] for acc in states]


#: `texts` given as a count grows (doubling) up to this many times itself until the paired positions
#: reach twice the widest module; a caller's own list of strings is used as it is.
MAX_TEXT_GROWTH = 8


def fit_alignment(
    source: Base,
    target: Base,
    *,
    texts: int | Sequence[str] = 256,
    ridge: float = RIDGE,
    seed: int = 0,
    batch: int = 32,
    device: str | None = None,
) -> Alignment:
    """Fit the layer map and the P/Q maps of `align` from the two bases on generic text:
    `texts` corpus lines drawn with `seed` (more, up to MAX_TEXT_GROWTH times as many, where the
    bases are too wide for that many), or the caller's own strings."""
    t0 = time.perf_counter()
    if ridge < 0 or batch < 1:
        raise MethodError(f"align: ridge={ridge} must be >= 0 and batch={batch} >= 1")
    (mx, tx, lx), (my, ty, ly) = _load(source, device), _load(target, device)
    ax, ay = arch_for(mx.config), arch_for(my.config)
    lines = generic_texts(texts, seed) if isinstance(texts, int) else [str(t) for t in texts]
    max_len = [min(512, getattr(m.config, "max_position_embeddings", None) or 512) for m in (mx, my)]
    px, py = pair_tokens(tx, ty, lines, (max_len[0], max_len[1]))
    n = sum(len(e.positions) for e in px)
    widest = max(max(i.shape) for a in (ax, ay) for i in a.modules())
    drawn = len(lines)
    while isinstance(texts, int) and n < 2 * widest and drawn < MAX_TEXT_GROWTH * texts:
        # A wide target (Gemma-3-270M's 2048-wide MLP) needs more positions than the default
        # lines give: draw twice as many (deterministically) until the P/Q fits are determined.
        drawn *= 2
        lines = generic_texts(drawn, seed)
        px, py = pair_tokens(tx, ty, lines, (max_len[0], max_len[1]))
        n = sum(len(e.positions) for e in px)
    if n < 2 * widest:
        raise MethodError(
            f"align: only {n} paired token positions from {len(lines)} texts; need at least {2 * widest} "
            f"(twice the widest module, {widest}); pass more texts"
        )
    bx = [px[i : i + batch] for i in range(0, len(px), batch)]
    by = [py[i : i + batch] for i in range(0, len(py), batch)]
    pads = (_pad_id(tx), _pad_id(ty))
    cka = cka_matrix(_layer_states(mx, ax, bx, pads[0]), _layer_states(my, ay, by, pads[1]))
    lmap = monotone_layer_map(cka)

    links = _links(ax, ay, lmap)
    want: list[tuple[set[str], set[str]]] = [(set(), set()), (set(), set())]  # per side: (inputs, outputs)
    for q_y, q_x, p_x, p_y in links.values():
        for side, tap in ((1, q_y), (0, q_x), (0, p_x), (1, p_y)):
            want[side][tap.kind == "out"].add(tap.module)
    stats = {key: (_Ridge(), _Ridge()) for key in links}
    for batch_x, batch_y in zip(bx, by, strict=True):
        acts_x = capture(mx, batch_x, pads[0], inputs=want[0][0], outputs=want[0][1])
        acts_y = capture(my, batch_y, pads[1], inputs=want[1][0], outputs=want[1][1])
        for key, (q_y, q_x, p_x, p_y) in links.items():
            stats[key][0].add(p_x.take(acts_x), p_y.take(acts_y))  # V_y ≈ V_x Pᵀ
            stats[key][1].add(q_y.take(acts_y), q_x.take(acts_x))  # U_x ≈ U_y Qᵀ
    maps = {
        key: (sp.solve(ridge).T.float().contiguous(), sq.solve(ridge).T.float().contiguous())
        for key, (sp, sq) in stats.items()
    }
    options = {
        "texts": texts if isinstance(texts, int) else len(lines),
        **({"texts_drawn": len(lines)} if isinstance(texts, int) and drawn != texts else {}),
        "texts_sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
        "ridge": ridge,
        "seed": seed,
        "batch": batch,
    }
    return Alignment(lx, ly, mx.config, my.config, lmap, cka, maps, n, options, time.perf_counter() - t0)


# -- applying ----------------------------------------------------------------------------------
def apply_alignment(
    al: Alignment,
    adapter: str | Path | Adapter,
    out: str | Path,
    *,
    force: bool = False,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Port one source adapter through a fitted alignment; write the PEFT folder for the target."""
    t0 = time.perf_counter()
    x = adapter if isinstance(adapter, Adapter) else load_adapter(adapter)
    ax, ay = arch_for(al.source_config), arch_for(al.target_config)
    ranks = set(x.ranks.values())
    rank, same = max(ranks), len(ranks) == 1
    ported: dict[tuple[int, str], list[LowRank]] = {}
    for mod, info in ax.check_adapter(x, al.source).items():
        lr = x.lowrank(mod)
        for part in info.parts:
            key = (al.layer_map[info.layer], info.layer, part.role)
            if key not in al.maps:
                raise AdapterError(
                    f"{x.path}: module {mod} adapts role {part.role!r}, which base {al.target} has no projection for"
                )
            P, Q = (m.double() for m in al.maps[key])
            piece = lr.rows(part.start, part.stop)
            ported.setdefault((key[0], part.role), []).append(
                LowRank(P @ piece.B.double(), piece.A.double() @ Q)
            )
    modules = {}
    for info in ay.modules():
        if not any((info.layer, p.role) in ported for p in info.parts):
            continue
        blocks = [
            refactor(concat(ported[(info.layer, p.role)]), rank)
            if (info.layer, p.role) in ported
            else LowRank(torch.zeros(p.stop - p.start, rank), torch.zeros(rank, info.shape[1]))
            for p in info.parts
        ]
        modules[info.name] = blocks[0] if len(blocks) == 1 else refactor(stack_rows(blocks), rank)
    apply_seconds = time.perf_counter() - t0
    prov = {
        "method": "align",
        "options": al.options,
        "source_base": al.source,
        "target_base": al.target,
        "layer_map": al.layer_map,
        "cka": [[round(v, 4) for v in row] for row in al.cka.tolist()],
        "n_pairs": al.n_pairs,
        "input_adapter": str(x.path),
        "input_sha256": sha256_file(x.weights_file),
        "cost": {
            "seconds": round(al.seconds + apply_seconds, 4),
            "fit_seconds": round(al.seconds, 4),
            "apply_seconds": round(apply_seconds, 4),
            "steps": 0,
            "generated_tokens": 0,
            "data": "generic text",
            "text_tokens": al.n_pairs,
        },
        **(provenance or {}),
    }
    return save_adapter(
        out,
        modules,
        rank=rank,
        alpha=float(x.config["lora_alpha"]) if same else float(rank),
        use_rslora=bool(x.config.get("use_rslora")) and same,
        base_model=al.target,
        num_layers=ay.num_layers,
        provenance=prov,
        force=force,
    )


_FITS: dict[tuple[Any, ...], Alignment] = {}


def align_port(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    adapter: str | Path | Adapter,
    out: str | Path,
    *,
    texts: int | Sequence[str] = 256,
    ridge: float = RIDGE,
    seed: int = 0,
    force: bool = False,
    provenance: dict[str, Any] | None = None,
    device: str | None = None,
) -> Path:
    """fit_alignment (memoised in-process on its arguments, since a study ports many adapters
    between the same two bases) + apply_alignment. The recorded cost counts the fit every time."""
    al = cached_alignment(source, target, texts=texts, ridge=ridge, seed=seed, device=device)
    return apply_alignment(al, adapter, out, force=force, provenance=provenance)


def cached_alignment(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    texts: int | Sequence[str] = 256,
    ridge: float = RIDGE,
    seed: int = 0,
    device: str | None = None,
) -> Alignment:
    """fit_alignment, memoised in-process on its arguments (and the device it ran on), and on disk
    under `cache_root()/alignments/` by the two bases' weight fingerprints and the fit's options,
    so that a resumed study or a second port between the same bases does not fit again (on
    SmolLM2-135M -> Gemma-3-270M a fit is about 15 minutes of 2 CPU cores). An unreadable stored
    fit is fitted again and replaced."""
    where = resolve_device(device)
    key = (str(source), str(target), texts if isinstance(texts, int) else tuple(texts), ridge, seed, where)
    if key not in _FITS:
        folder = _stored_fit(source, target, texts, ridge, seed, where)
        al = None
        if folder is not None and (folder / ALIGN_JSON).is_file():
            try:
                al = Alignment.load(folder)
            except (MethodError, KeyError, TypeError, ValueError):  # damaged: fit again
                al = None
        if al is None:
            al = fit_alignment(str(source), str(target), texts=texts, ridge=ridge, seed=seed, device=where)
            if folder is not None:
                al.save(folder, force=True)
        _FITS[key] = al
    return _FITS[key]


def _stored_fit(source, target, texts, ridge: float, seed: int, where: str) -> Path | None:
    """Where the fit of these bases and options is kept: a folder named by the sha256 of both
    bases' weight fingerprints, the options, the device kind and the alignment format (None for
    bases that are not on disk, such as in-memory models)."""
    from loraport.models.cache import cache_root
    from loraport.models.resolve import resolve_model

    if not all(isinstance(b, str | os.PathLike) for b in (source, target)):
        return None
    fps = [resolve_model(b).fingerprint for b in (source, target)]
    text_id = (
        texts if isinstance(texts, int) else hashlib.sha256("\n".join(map(str, texts)).encode()).hexdigest()
    )
    ident = repr((FORMAT, fps, text_id, ridge, seed, where.split(":")[0]))
    return cache_root() / "alignments" / hashlib.sha256(ident.encode()).hexdigest()[:24]


def target_layer_map(al: Alignment) -> list[int]:
    """For each target layer, the source layer it reads from (an order-preserving assignment that
    maximises total CKA): the form the anchor methods' layer pairing takes (`fit_map(layers="cka")`)."""
    return monotone_layer_map(al.cka.T)
