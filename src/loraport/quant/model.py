"""Fake-quantize a model's linear weights in place (quantize → dequantize), adapters untouched.

    batches = calibration_batches(tokenizer, texts)                  # calibration text, tokenized
    inputs = collect_inputs(model, batches)                          # per linear: (N × in) inputs
    report = quantize_model(model, "gptq_lite", calibration=inputs)  # {module: QuantStats}

The linears are the projections the base's architecture family lists (q, k, v, o, gate, up, down,
fused ones included); embeddings, norms and the output head stay in full precision, as the common
GGUF/AWQ/GPTQ recipes leave them (or keep them at higher precision). On a PEFT-wrapped model only
each LoRA layer's `base_layer` weight changes: the adapter stays in full precision, as PEFT applies
it on a quantized base. Every module is checked (shape, calibration data) before the first weight is
written, so a scheme that cannot handle one module leaves the model as it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from loraport.arch import arch_for
from loraport.quant.calibrated import output_error
from loraport.quant.schemes import Quantizer, get_quantizer
from loraport.quant.uniform import QuantError

CALIBRATION_ROWS = 512  # inputs kept per linear (AWQ/GPTQ papers calibrate on 128 × 512–2048 tokens)


@dataclass(frozen=True)
class QuantStats:
    """One linear's quantization: ‖Ŵ − W‖/‖W‖, the output error ‖(Ŵ − W)Xᵀ‖/‖WXᵀ‖ on the
    calibration inputs (None without them) and the seconds it took."""

    weight_error: float
    output_error: float | None
    seconds: float


def _lm(model: torch.nn.Module) -> torch.nn.Module:
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def _weight_owner(module: torch.nn.Module) -> torch.nn.Module:
    """The module holding the frozen base weight (a PEFT LoRA layer's `base_layer`)."""
    return getattr(module, "base_layer", module)


def linear_names(model: torch.nn.Module) -> list[str]:
    """The projections of the model's architecture family, by module name."""
    return [m.name for m in arch_for(_lm(model).config).modules()]


def calibration_batches(
    tokenizer, texts: Sequence[str], batch: int = 8, max_length: int = 128
) -> list[dict[str, torch.Tensor]]:
    """`texts` tokenized into padded batches (input_ids, attention_mask) for `collect_inputs`."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = []
    for lo in range(0, len(texts), batch):
        enc = tokenizer(
            list(texts[lo : lo + batch]),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_length,
        )
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return out


@torch.no_grad()
def collect_inputs(
    model: torch.nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    modules: Sequence[str] | None = None,
    rows: int = CALIBRATION_ROWS,
) -> dict[str, torch.Tensor]:
    """Each linear's inputs at the non-padding positions of `batches` (float32, CPU), at most `rows`
    of them, evenly spaced so the sample is deterministic."""
    lm = _lm(model)
    names = list(modules or linear_names(model))
    seen: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    mask_now: list[torch.Tensor] = []

    def hook(name: str):
        def fn(_mod, args):
            x = args[0].detach()
            seen[name].append(x.reshape(-1, x.shape[-1])[mask_now[0]].float().cpu())

        return fn

    handles = [_weight_owner(lm.get_submodule(n)).register_forward_pre_hook(hook(n)) for n in names]
    try:
        device = next(lm.parameters()).device
        for b in batches:
            mask_now[:] = [b["attention_mask"].reshape(-1).bool().to(device)]
            lm(input_ids=b["input_ids"].to(device), attention_mask=b["attention_mask"].to(device))
    finally:
        for h in handles:
            h.remove()
    out = {}
    for n, parts in seen.items():
        x = torch.cat(parts) if parts else torch.zeros(0)
        if len(x) > rows:
            x = x[torch.linspace(0, len(x) - 1, rows).round().long()]
        out[n] = x
    return out


def quantize_model(
    model: torch.nn.Module,
    scheme: str | Quantizer,
    *,
    calibration: dict[str, torch.Tensor] | None = None,
    modules: Sequence[str] | None = None,
) -> dict[str, QuantStats]:
    """Fake-quantize the linears `modules` (default: every projection) of `model` in place with
    `scheme` (a registry name or a quantizer). Calibrated schemes need `calibration[module]`."""
    quant = get_quantizer(scheme) if isinstance(scheme, str) else scheme
    lm = _lm(model)
    names = list(modules or linear_names(model))
    owners: dict[str, torch.nn.Module] = {}
    for name in names:  # every check before the first write
        try:
            owner = _weight_owner(lm.get_submodule(name))
        except AttributeError:
            raise QuantError(f"{quant.label}: the model has no module {name!r}") from None
        weight = getattr(owner, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise QuantError(f"{quant.label}: {name} has no weight matrix")
        quant.check(name, tuple(weight.shape))
        x = (calibration or {}).get(name)
        if quant.calibrated and (x is None or len(x) == 0):
            raise QuantError(f"{quant.label} needs calibration inputs for {name}; none were given")
        owners[name] = owner
    report = {}
    with torch.no_grad():
        for name, owner in owners.items():
            t0 = time.perf_counter()
            w = owner.weight.detach().float().cpu().clone()  # .float() of a float32 weight is no copy
            x = (calibration or {}).get(name)
            w_hat = quant.quantize(w, x if quant.calibrated else None)
            owner.weight.copy_(w_hat.to(owner.weight.dtype))
            seconds = time.perf_counter() - t0
            werr = float((w_hat - w).norm() / w.norm().clamp_min(1e-30))
            oerr = None
            if x is not None and len(x):
                ref = output_error(torch.zeros_like(w), w, x)
                oerr = (output_error(w_hat, w, x) / max(ref, 1e-300)) ** 0.5
            report[name] = QuantStats(werr, oerr, seconds)
    return report
