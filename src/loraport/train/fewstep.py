"""Few-step updates from a frozen starting point, scored by where their loss change lands
(seed 003's protocol, notes/quantization_and_diagnostics.md "Few-step update studies").

    upd = FewStep(model, tokenizer, start=port_factors, seed=0)          # start None: the base
    res = upd.run(batches, heldout, credit="backprop", k=5, lr=0.05)
    res.summary()      # dT, dV, PUR with a bootstrap CI, cosine with backprop, variance, accuracy
    best = sweep_lr(upd, batches, credit="dfa", k=1, lrs=[0.01, 0.1, 1.0])   # held-out never seen

The trainable state is the LoRA factors (A, B) of every module the architecture lists (scaling
folded into B, as adapters store them), added to the frozen base by forward hooks. Each credit
signal estimates the weight-space gradient G_l = ∂L/∂W_l of each module and the factors move by
plain SGD along the chain rule of W_l + B_l A_l: ΔB = −lr·G Aᵀ, ΔA = −lr·Bᵀ G. So for "backprop"
the update is exactly −lr times the autograd gradient of the factors.

Credits (CREDITS):
  backprop   the true gradient (the oracle).
  dfa        direct feedback alignment: the output error e_t = softmax(z_t) − onehot(y_t) of every
             answer position (divided by the number of answer tokens, as the mean loss is) is sent
             to each module's output through a fixed random matrix R_l (out_l × vocab, N(0, 1/vocab),
             seeded by (seed, module name)): δ_t = R_l e_t, G_l = Σ_t δ_t x_tᵀ with x_t the module's
             input at that position. A module's output is linear in W, so f′ = 1.
  transfer   a credit predicted without Y's gradient: X's own backprop gradient G^X on the same
             items (the source base with its adapter, frozen at its start), mapped to Y by
             `transfer` (a callable from X's per-module weight gradients to Y's): `ridge_transfer`,
             the linear part of a global ridge port fitted on the anchors, is the one studies use.
             Identity when X and Y share the base (the tests): then it equals backprop.

Accuracy is exact-match under greedy decoding computed by teacher forcing: an item is correct when
the argmax at every answer position (end-of-answer token included) is the label, which is exactly
when greedy generation from the prompt produces the answer and stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from loraport.adapters import LowRank
from loraport.errors import LoraportError
from loraport.tasks import Item
from loraport.train.data import collate, encode_examples
from loraport.train.lora import default_targets

CREDITS = ("backprop", "dfa", "transfer")
BOOTSTRAP = 1000


class FewStepError(LoraportError):
    """Bad few-step arguments (k, credit, step sizes)."""


def check_args(
    credit: str | Sequence[str], k: int | Sequence[int], lrs: Sequence[float] | None = None
) -> None:
    """One-line errors for bad arguments, before any model work."""
    for c in [credit] if isinstance(credit, str) else credit:
        if c not in CREDITS:
            raise FewStepError(f"unknown credit {c!r} (credits: {', '.join(CREDITS)})")
    for n in [k] if isinstance(k, int) else k:
        if not isinstance(n, int) or n < 1:
            raise FewStepError(f"k must be an integer ≥ 1 (got {n!r})")
    if lrs is not None:
        if not len(lrs):
            raise FewStepError("the step-size grid is empty; list at least one step size")
        if any(not lr > 0 for lr in lrs):
            raise FewStepError(f"step sizes must be > 0 (got {list(lrs)})")


def seed_int(*parts: Any) -> int:
    from loraport.bench.store import content_key

    return int(content_key(*parts)[:15], 16)


def flat(d: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([d[n].reshape(-1) for n in sorted(d)]) if d else torch.zeros(0)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of two flat vectors in [-1, 1] (0 when either is zero), in float64."""
    a, b = a.double(), b.double()
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        return 0.0
    return float(torch.clamp(a @ b / (na * nb), -1.0, 1.0))


class FewStep:
    """A base with LoRA factors hooked onto its modules, reset to `start` before each batch."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        start: dict[str, LowRank] | None = None,
        *,
        rank: int = 4,
        seed: int = 0,
        max_length: int = 256,
        transfer_from: FewStep | None = None,
        transfer: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    ) -> None:
        self.model, self.tokenizer, self.seed, self.max_length = model.eval(), tokenizer, seed, max_length
        for p in model.parameters():
            p.requires_grad_(False)
        targets = set(default_targets(model.config))
        self.modules = {
            n: m
            for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in targets
        }
        if start is not None:
            unknown = sorted(set(start) - set(self.modules))
            if unknown:
                raise FewStepError(f"start adapter has modules the base does not have: {unknown[:3]}")
        g = torch.Generator().manual_seed(seed_int("fewstep-init", seed))
        self.start: dict[str, LowRank] = {}
        for n, m in self.modules.items():
            if start is not None and n in start:
                self.start[n] = LowRank(start[n].B.float().clone(), start[n].A.float().clone())
            else:  # as PEFT initialises: random A, zero B (the base's own function)
                A = torch.randn(rank, m.in_features, generator=g) / m.in_features**0.5
                self.start[n] = LowRank(torch.zeros(m.out_features, rank), A)
        self.params: dict[str, torch.Tensor] = {}
        self.inputs: dict[str, torch.Tensor] = {}
        self.transfer_from, self.transfer = transfer_from, transfer
        self.reset()
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.modules.items()]
        self._feedback: dict[str, torch.Tensor] | None = None

    def close(self) -> None:
        """Remove the hooks: the base model is its plain self again."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def _hook(self, name: str):
        def hook(mod: torch.nn.Module, inp: tuple, out: torch.Tensor) -> torch.Tensor:
            x = inp[0]
            self.inputs[name] = x.detach()
            A, B = self.params[f"{name}.A"], self.params[f"{name}.B"]
            return out + (x.to(A.dtype) @ A.T) @ B.T

        return hook

    def reset(self) -> None:
        """Back to the frozen starting point."""
        self.params = {}
        for n, f in self.start.items():
            self.params[f"{n}.A"] = f.A.clone().requires_grad_(True)
            self.params[f"{n}.B"] = f.B.clone().requires_grad_(True)

    def encode(self, items: Sequence[Item]) -> dict[str, torch.Tensor]:
        pad = self.tokenizer.pad_token_id
        pad = self.tokenizer.eos_token_id if pad is None else pad
        return collate(encode_examples(self.tokenizer, items, self.max_length, "few-step batch"), pad)

    def _forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean answer-token loss, logits) with the current factors."""
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        z, y = logits[:, :-1].float(), batch["labels"][:, 1:]
        return F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), ignore_index=-100), logits

    def loss(self, batch: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            return float(self._forward(batch)[0])

    def accuracy(self, batch: dict[str, torch.Tensor]) -> float:
        """Exact match under greedy decoding, by teacher forcing (see the module docstring)."""
        with torch.no_grad():
            z = self._forward(batch)[1][:, :-1]
        y = batch["labels"][:, 1:]
        ok = ((z.argmax(-1) == y) | (y == -100)).all(dim=1)
        return float(ok.float().mean())

    def feedback(self) -> dict[str, torch.Tensor]:
        """DFA's fixed random matrices R_l (out_l × vocab), one per module, seeded by (seed, name)."""
        if self._feedback is None:
            vocab = self.model.get_output_embeddings().out_features
            self._feedback = {}
            for n, m in self.modules.items():
                g = torch.Generator().manual_seed(seed_int("dfa", self.seed, n))
                self._feedback[n] = torch.randn(m.out_features, vocab, generator=g) / vocab**0.5
        return self._feedback

    def weight_grads(
        self, batch: dict[str, torch.Tensor], credit: str, items: Sequence[Item] | None = None
    ) -> dict[str, torch.Tensor]:
        """Each module's estimate of ∂L/∂W (out × in) under `credit` ("transfer" encodes `items`
        with the source side's tokenizer; without them it reuses `batch`, for one shared base)."""
        if credit == "transfer":
            if self.transfer_from is None:
                raise FewStepError("credit 'transfer' needs transfer_from (the source side's FewStep)")
            src = self.transfer_from
            gx = src.weight_grads(src.encode(items) if items is not None else batch, "backprop")
            return self.transfer(gx) if self.transfer is not None else gx
        if credit == "backprop":
            W = {
                n: torch.zeros(m.out_features, m.in_features, requires_grad=True)
                for n, m in self.modules.items()
            }
            handles = [m.register_forward_hook(_add_linear(W[n])) for n, m in self.modules.items()]
            try:
                loss, _ = self._forward(batch)
                grads = torch.autograd.grad(loss, [W[n] for n in self.modules])
            finally:
                for h in handles:
                    h.remove()
            return dict(zip(self.modules, grads, strict=True))
        if credit == "dfa":
            with torch.no_grad():
                _, logits = self._forward(batch)
                z, y = logits[:, :-1].float(), batch["labels"][:, 1:]
                rows, cols = (y != -100).nonzero(as_tuple=True)
                e = F.softmax(z[rows, cols], -1)
                e[torch.arange(len(rows)), y[rows, cols]] -= 1.0
                e /= max(len(rows), 1)  # the mean loss's gradient wrt the logits
                fb = self.feedback()
                return {n: (e @ fb[n].T).T @ self.inputs[n][rows, cols].float() for n in self.modules}
        raise FewStepError(f"unknown credit {credit!r} (credits: {', '.join(CREDITS)})")

    def direction(
        self, batch: dict[str, torch.Tensor], credit: str, items: Sequence[Item] | None = None
    ) -> dict[str, torch.Tensor]:
        """The factor-space direction d (update = −lr·d) of `credit`: the chain rule of W + BA (a
        module the credit gives nothing for does not move)."""
        G = self.weight_grads(batch, credit, items)
        d = {}
        for n, m in self.modules.items():
            A, B = self.params[f"{n}.A"].detach(), self.params[f"{n}.B"].detach()
            g = G.get(n)
            g = torch.zeros(m.out_features, m.in_features) if g is None else g.float()
            d[f"{n}.A"], d[f"{n}.B"] = B.T @ g, g @ A.T
        return d

    def step(self, d: dict[str, torch.Tensor], lr: float) -> None:
        with torch.no_grad():
            for name, v in d.items():
                self.params[name] -= lr * v

    def state(self) -> torch.Tensor:
        return flat({n: p.detach() for n, p in self.params.items()})

    def run(
        self, batches: Sequence[Sequence[Item]], heldout: Sequence[Item], *, credit: str, k: int, lr: float
    ) -> FewStepResult:
        """From the start, k steps of `credit` on each batch (reset between batches)."""
        check_args(credit, k, [lr])
        if not batches or not heldout:
            raise FewStepError("few-step updates need at least one update batch and one held-out item")
        held = self.encode(heldout)
        self.reset()
        v0, acc0 = self.loss(held), self.accuracy(held)
        res = FewStepResult(credit=credit, k=k, lr=lr, acc_before=acc0)
        for items in batches:
            batch = self.encode(items)
            self.reset()
            t0, s0 = self.loss(batch), self.state()
            cos = []
            for _ in range(k):
                d = self.direction(batch, credit, items)
                ref = d if credit == "backprop" else self.direction(batch, "backprop")
                cos.append(cosine(flat(d), flat(ref)))
                self.step(d, lr)
            res.d_train.append(self.loss(batch) - t0)
            res.d_heldout.append(self.loss(held) - v0)
            res.cosines.append(float(np.mean(cos)))
            res.updates.append((self.state() - s0).double().numpy())
            res.acc_after.append(self.accuracy(held))
        self.reset()
        return res


def ridge_transfer(
    x_anchors: Sequence[dict[str, torch.Tensor]],
    y_anchors: Sequence[dict[str, torch.Tensor]],
    lam: float = 0.1,
) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """A map of X weight gradients to Y's through the anchors, as a global ridge port maps an
    adapter's ΔW: w = (Kx + λ·mean(diag Kx)·I)⁻¹ k with k_i = Σ_modules ⟨G, ΔW^X_i⟩, then
    Σ_i w_i ΔW^Y_i. Linear (no centring, unlike the global_ridge method's affine map), since a
    gradient has no mean to add. Anchors are per-module dense ΔW (out × in); float64 Grams, as
    they are small and ill-conditioned."""
    if not x_anchors or len(x_anchors) != len(y_anchors):
        raise FewStepError("ridge_transfer needs the same number (≥ 1) of X and Y anchor adapters")

    def dot(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        return float(sum((a[m].double() * b[m].double()).sum() for m in a if m in b))

    Kx = torch.tensor([[dot(a, b) for b in x_anchors] for a in x_anchors], dtype=torch.float64)
    inv = torch.linalg.inv(Kx + lam * Kx.diagonal().mean() * torch.eye(len(Kx), dtype=torch.float64))
    modules = sorted(set.intersection(*(set(y) for y in y_anchors)))

    def transfer(G: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        w = inv @ torch.tensor([dot(G, a) for a in x_anchors], dtype=torch.float64)
        return {m: sum(float(w[i]) * y[m].float() for i, y in enumerate(y_anchors)) for m in modules}

    return transfer


def _add_linear(W: torch.Tensor):
    """A forward hook adding x Wᵀ (W zero): autograd's ∂L/∂W is the module's weight gradient."""

    def hook(mod: torch.nn.Module, inp: tuple, out: torch.Tensor) -> torch.Tensor:
        return out + inp[0].float() @ W.T

    return hook


@dataclass
class FewStepResult:
    """Per update batch: ΔL on it (d_train), ΔL on the held-out items (d_heldout), the mean cosine
    of the k step directions with backprop's, the update Δθ and the held-out accuracy after."""

    credit: str
    k: int
    lr: float
    acc_before: float
    d_train: list[float] = field(default_factory=list)
    d_heldout: list[float] = field(default_factory=list)
    cosines: list[float] = field(default_factory=list)
    updates: list[np.ndarray] = field(default_factory=list)
    acc_after: list[float] = field(default_factory=list)

    def summary(self, seed: int = 0) -> dict[str, Any]:
        U = np.stack(self.updates)
        norm = float(np.linalg.norm(U, axis=1).mean())
        return {
            "credit": self.credit,
            "k": self.k,
            "lr": self.lr,
            "batches": len(self.d_train),
            "d_train": float(np.mean(self.d_train)),
            "d_heldout": float(np.mean(self.d_heldout)),
            "d_heldout_ci": mean_ci(self.d_heldout, seed),
            **pur(self.d_train, self.d_heldout, seed),
            "cosine": float(np.mean(self.cosines)),
            "update_norm": norm,
            "variance": {**update_variance(U), "relative_ci": variance_ci(U, seed)},
            "acc_before": self.acc_before,
            "acc_after": float(np.mean(self.acc_after)),
        }


def update_variance(U: np.ndarray) -> dict[str, float]:
    """Across batches: the total variance of Δθ (trace of its covariance) and the same relative to
    the mean squared norm (scale-free, so credits with different step sizes compare)."""
    total = float(((U - U.mean(0)) ** 2).sum(1).mean())
    sq = float((U**2).sum(1).mean())
    return {"total": total, "relative": total / sq if sq > 0 else 0.0}


def variance_ci(U: np.ndarray, seed: int = 0, n_boot: int = 200) -> list[float] | None:
    """95% percentile bootstrap CI of the relative variance (batches resampled; None with fewer
    than three batches). Relative variance is ≤ 1, so credits compare on one scale."""
    if len(U) < 3:
        return None
    rng = np.random.default_rng(seed)
    boot = [update_variance(U[rng.integers(0, len(U), len(U))])["relative"] for _ in range(n_boot)]
    return [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]


def mean_ci(values: Sequence[float], seed: int = 0) -> list[float] | None:
    """95% percentile bootstrap CI of a mean over batches (None with fewer than two)."""
    v = np.asarray(values, float)
    if len(v) < 2:
        return None
    boot = v[np.random.default_rng(seed).integers(0, len(v), size=(BOOTSTRAP, len(v)))].mean(1)
    return [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]


def pur(d_train: Sequence[float], d_heldout: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """PUR = ΣΔV / ΣΔT over batches with a 95% percentile bootstrap CI (batches resampled)."""
    t, v = np.asarray(d_train, float), np.asarray(d_heldout, float)
    if not len(t):
        return {"pur": None, "pur_ci": None}
    with np.errstate(divide="ignore", invalid="ignore"):
        point = float(v.sum() / t.sum()) if t.sum() != 0 else None
        idx = np.random.default_rng(seed).integers(0, len(t), size=(BOOTSTRAP, len(t)))
        boot = v[idx].sum(1) / t[idx].sum(1)
    boot = boot[np.isfinite(boot)]
    ci = (
        [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
        if len(boot) and len(t) > 1
        else None
    )
    return {"pur": point, "pur_ci": ci}


def sweep_lr(
    upd: FewStep, batches: Sequence[Sequence[Item]], *, credit: str, k: int, lrs: Sequence[float]
) -> dict[str, Any]:
    """The step size with the lowest mean loss change on the update batches themselves (no held-out
    item is looked at): {"lr", "d_train" per lr}."""
    check_args(credit, k, lrs)
    scores = {}
    for lr in lrs:
        res = upd.run(batches, batches[0], credit=credit, k=k, lr=lr)
        scores[lr] = float(np.mean(res.d_train)) if np.all(np.isfinite(res.d_train)) else float("inf")
    return {"lr": min(scores, key=scores.get), "d_train": scores}
