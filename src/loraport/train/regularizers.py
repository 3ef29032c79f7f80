"""Regularizers for LoRA training, one registry; a recipe names one and its strength λ.

    Recipe(regularizer="l2_delta", strength=0.1)        # in a study YAML: recipe: {regularizer: ...}
    REGULARIZERS.names()

Notation: a LoRA module m has ΔW_m = s·B_m·A_m (B: out×r, A: r×in, s = alpha/r); L_task is the
recipe's answer-token cross-entropy. Penalties are added to the loss; constraints act after each
optimiser step; `fake_quant` changes the forward pass.

| name | mechanism | formula |
|---|---|---|
| l2_delta | weight decay on the update itself | L + λ Σ_m ‖ΔW_m‖²_F |
| spectral | Lipschitz (largest singular value) | L + λ Σ_m σ_max(ΔW_m)² |
| nuclear | low rank (sum of singular values) | L + λ Σ_m ‖ΔW_m‖_* |
| orthogonal_a | orthonormal down-projections | L + λ Σ_m ‖A_m A_mᵀ − I_r‖²_F |
| hidden_change | stay close to the base's states | L + λ (1/N) Σ_l ‖H_l − H⁰_l‖²_F / ‖H⁰_l‖²_F |
| entropy | confidence penalty (Pereyra et al. 2017) | L − λ mean_t H(p_t) |
| fake_quant | quantization-aware forward | forward with W + λ(Q(W) − W), Q = int4_sym_row |
| weight_clip | max-norm bound on ΔW | after each step ‖(sB)_i‖, ‖A_{:,j}‖ ≤ √λ, so |ΔW_ij| ≤ λ |

`hidden_change`: H_l are the outputs of decoder layer l (l = 1..N) at the unpadded positions with the
adapter on, H⁰_l with it off (a second forward pass, no gradient). `entropy`: H(p_t) = −Σ_v p_tv log
p_tv of the next-token distribution at the answer positions; subtracting it keeps the adapter from
collapsing the output distribution. These two need the full model output, so they compute the
output layer at every position (`answer_logits` does not apply). `spectral` finds σ_max by power
iteration (two steps per training step, warm-started; the gradient of uᵀΔWv is u vᵀ, as in spectral
normalisation). `nuclear` takes the singular values from the r×r matrix Lᵀ(sB)ᵀ(sB)L with L the
Cholesky factor of A Aᵀ, smoothed as Σ √(σ² + ε) − √ε so that zero singular values have a gradient.
`fake_quant` trains the adapter on the base it will be deployed on: PEFT applies a full-precision
adapter to a quantized base, y = Q(W)x + ΔWx; λ = 1 is the int4 base, smaller λ part of the way. The
base weights are restored when training ends. `weight_clip` is a constraint, not a penalty (Srebro &
Shraibman's max-norm): |ΔW_ij| = |⟨(sB)_i, A_{:,j}⟩| ≤ ‖(sB)_i‖·‖A_{:,j}‖ ≤ λ.

The losses a run logs (`Trained.losses`, train_log.json) are the regularized totals.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from loraport.errors import LoraportError
from loraport.registry import Registry

Batch = dict[str, torch.Tensor]
LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]


class RegularizerError(LoraportError):
    """Unknown regularizer or a strength outside its range."""


@dataclass
class LoraModule:
    """One LoRA layer during training: its trainable factors, scaling and the frozen base layer."""

    name: str
    A: torch.nn.Parameter  # (r, in)
    B: torch.nn.Parameter  # (out, r), without the scaling
    scale: float
    base: torch.nn.Module  # the wrapped nn.Linear
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # per-module memory (power iteration)


@dataclass(frozen=True)
class Regularizer:
    """A documented mechanism with its strength range (`low` < λ ≤ `high`) and default λ."""

    formula: str
    default: float
    high: float = 1e3
    low: float = 0.0
    needs_outputs: bool = False  # the penalty reads the model output (hidden states, logits)

    def check_strength(self, name: str, strength: float) -> None:
        if not (self.low < strength <= self.high) or not math.isfinite(strength):
            raise RegularizerError(
                f"strength {strength:g} is out of range for regularizer {name!r}: "
                f"{self.low:g} < strength ≤ {self.high:g}"
            )

    def penalty(self, mods: list[LoraModule], lam: float, ctx: Context) -> torch.Tensor | None:
        return None

    def setup(self, mods: list[LoraModule], lam: float) -> Callable[[], None] | None:
        """Change the model before training; returns what undoes it (or None)."""
        return None

    def after_step(self, mods: list[LoraModule], lam: float) -> None:
        return None


@dataclass
class Context:
    """What a penalty may read: the batch and, for `needs_outputs`, the model output."""

    model: torch.nn.Module
    batch: Batch
    outputs: object | None = None


def _delta_sq(m: LoraModule) -> torch.Tensor:
    """‖s·B·A‖²_F = s²·trace((BᵀB)(AAᵀ)) without forming ΔW."""
    return m.scale**2 * ((m.B.T @ m.B) * (m.A @ m.A.T)).sum()


class L2Delta(Regularizer):
    def penalty(self, mods, lam, ctx):
        return lam * sum(_delta_sq(m) for m in mods)


class Spectral(Regularizer):
    ITERS = 2

    def penalty(self, mods, lam, ctx):
        total = None
        for m in mods:
            with torch.no_grad():
                v = m.state.get("v")
                if v is None:
                    gen = torch.Generator().manual_seed(0)
                    v = torch.randn(m.A.shape[1], generator=gen).to(m.A)
                    v = v / v.norm()
                u = None
                for _ in range(self.ITERS):
                    u = m.B @ (m.A @ v)
                    if float(u.norm()) < 1e-12:  # ΔW = 0 (B starts at zero): no penalty yet
                        u = None
                        break
                    u = u / u.norm()
                    v = m.A.T @ (m.B.T @ u)
                    v = v / v.norm()
                m.state["v"] = v
            if u is None:
                continue
            sigma = m.scale * (u @ m.B) @ (m.A @ v)
            total = sigma**2 if total is None else total + sigma**2
        return None if total is None else lam * total


class Nuclear(Regularizer):
    EPS = 1e-8

    def penalty(self, mods, lam, ctx):
        total = None
        for m in mods:
            A, B = m.A.double(), m.B.double() * m.scale
            ga = A @ A.T
            jitter = 1e-10 * float(ga.detach().diagonal().mean()) + 1e-30
            L = torch.linalg.cholesky(ga + jitter * torch.eye(len(ga), dtype=ga.dtype))
            sq = torch.linalg.eigvalsh(L.T @ (B.T @ B) @ L).clamp_min(0)  # σ_i² of ΔW
            norm = (torch.sqrt(sq + self.EPS) - math.sqrt(self.EPS)).sum().to(m.A.dtype)
            total = norm if total is None else total + norm
        return None if total is None else lam * total


class OrthogonalA(Regularizer):
    def penalty(self, mods, lam, ctx):
        return lam * sum(((m.A @ m.A.T - torch.eye(m.A.shape[0]).to(m.A)) ** 2).sum() for m in mods)


class HiddenChange(Regularizer):
    def penalty(self, mods, lam, ctx):
        b = ctx.batch
        with torch.no_grad(), ctx.model.disable_adapter():
            base = ctx.model(
                input_ids=b["input_ids"], attention_mask=b["attention_mask"], output_hidden_states=True
            ).hidden_states
        mask = b["attention_mask"].bool()
        layers = range(1, len(base))
        terms = [
            ((ctx.outputs.hidden_states[i][mask] - base[i][mask]) ** 2).sum()
            / (base[i][mask] ** 2).sum().clamp_min(1e-12)
            for i in layers
        ]
        return lam * torch.stack(terms).mean()


class Entropy(Regularizer):
    def penalty(self, mods, lam, ctx):
        labels = ctx.batch["labels"]
        rows, cols = (labels[:, 1:] != -100).nonzero(as_tuple=True)
        logp = torch.log_softmax(ctx.outputs.logits[rows, cols].float(), dim=-1)
        entropy = -(logp.exp() * logp).sum(-1).mean()
        return -lam * entropy


class FakeQuant(Regularizer):
    SCHEME = "int4_sym_row"

    def setup(self, mods, lam):
        from loraport.quant import get_quantizer

        quant = get_quantizer(self.SCHEME)
        saved = []
        with torch.no_grad():
            for m in mods:
                w = m.base.weight
                saved.append((w, w.detach().clone()))
                q = quant.quantize(w.detach().float().cpu()).to(w)
                w.add_(lam * (q - w))

        def restore() -> None:
            with torch.no_grad():
                for w, orig in saved:
                    w.copy_(orig)

        return restore


class WeightClip(Regularizer):
    def after_step(self, mods, lam):
        bound = math.sqrt(lam)
        with torch.no_grad():
            for m in mods:
                # rows of s·B and columns of A to norm ≤ √λ (B is stored without the scaling s)
                rows = (m.B.norm(dim=1, keepdim=True) * m.scale / bound).clamp_min(1.0)
                m.B.div_(rows)
                cols = (m.A.norm(dim=0, keepdim=True) / bound).clamp_min(1.0)
                m.A.div_(cols)


REGULARIZERS: Registry[Regularizer] = Registry("regularizer", RegularizerError)
REGULARIZERS.add("l2_delta", L2Delta("λ Σ_m ‖ΔW_m‖²_F", default=0.1))
REGULARIZERS.add("spectral", Spectral("λ Σ_m σ_max(ΔW_m)²", default=0.1))
REGULARIZERS.add("nuclear", Nuclear("λ Σ_m ‖ΔW_m‖_*", default=0.01))
REGULARIZERS.add("orthogonal_a", OrthogonalA("λ Σ_m ‖A_m A_mᵀ − I‖²_F", default=0.01))
REGULARIZERS.add(
    "hidden_change",
    HiddenChange("λ mean_l ‖H_l − H⁰_l‖²_F / ‖H⁰_l‖²_F", default=1.0, needs_outputs=True),
)
REGULARIZERS.add("entropy", Entropy("−λ mean_t H(p_t)", default=0.1, needs_outputs=True))
REGULARIZERS.add("fake_quant", FakeQuant("forward with W + λ(Q_int4(W) − W)", default=1.0, high=1.0))
REGULARIZERS.add("weight_clip", WeightClip("|ΔW_ij| ≤ λ (max-norm on sB rows, A columns)", default=0.05))


def get_regularizer(name: str) -> Regularizer:
    """The regularizer registered as `name`; RegularizerError naming the closest one otherwise."""
    return REGULARIZERS.get(name)


class Bound:
    """A regularizer attached to one PEFT model for one training run.

    reg = Bound(peft_model, "l2_delta", 0.1)
    loss_fn = reg.wrap(task_loss_fn)   # task loss (+ penalty)
    reg.after_step()                   # after each optimiser step
    reg.close()                        # undo any change to the base (always, in a finally)
    """

    def __init__(self, peft_model: torch.nn.Module, name: str, strength: float | None) -> None:
        from peft.tuners.lora import LoraLayer

        self.name = name
        self.reg = get_regularizer(name)
        self.strength = self.reg.default if strength is None else float(strength)
        self.reg.check_strength(name, self.strength)
        self.mods = [
            LoraModule(
                name.removeprefix("base_model.model."),
                mod.lora_A["default"].weight,
                mod.lora_B["default"].weight,
                float(mod.scaling["default"]),
                mod.base_layer,
            )
            for name, mod in peft_model.named_modules()
            if isinstance(mod, LoraLayer) and "default" in mod.lora_A
        ]
        self._undo = self.reg.setup(self.mods, self.strength)

    def wrap(self, task_loss: LossFn | None) -> LossFn:
        """The training loss: the task loss plus this regularizer's penalty (if it has one)."""

        def loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
            ctx = Context(model, batch)
            if self.reg.needs_outputs:
                ctx.outputs = model(**batch, output_hidden_states=True)
                value = ctx.outputs.loss
            else:
                value = model(**batch).loss if task_loss is None else task_loss(model, batch)
            extra = self.reg.penalty(self.mods, self.strength, ctx)
            return value if extra is None else value + extra

        return loss

    def after_step(self) -> None:
        self.reg.after_step(self.mods, self.strength)

    def close(self) -> None:
        if self._undo is not None:
            self._undo()
            self._undo = None
