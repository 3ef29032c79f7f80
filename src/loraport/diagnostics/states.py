"""What an adapter does to the hidden states: linear CKA and relative change, layer by layer.

    batches = calibration_batches(tokenizer, texts)         # loraport.quant: padded token batches
    adapter_cka(model, adapter_modules, batches)             # [CKA of layer 1, layer 2, ...]
    state_change(model, adapter_modules, batches)            # [‖H_l − H⁰_l‖²/‖H⁰_l‖², ...]

H⁰_l are the outputs of decoder layer l at the unpadded positions of `batches` on the base, H_l the
same with ΔW = B·A added to each module's weight (merged in place for the forward pass, the original
weights restored after). CKA is linear CKA between H⁰_l and H_l (`loraport.port.align.cka_matrix`,
the one the `align` port's layer map uses): 1 means the adapter moved the states only by a rotation
and scale, lower values a change of their geometry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch

from loraport.adapters import LowRank
from loraport.errors import AdapterError

POSITIONS = 1024  # CKA's Grams are positions² per layer


def _lm(model: torch.nn.Module) -> torch.nn.Module:
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


@contextmanager
def merged(model: torch.nn.Module, modules: dict[str, LowRank]) -> Iterator[torch.nn.Module]:
    """`model` with each module's weight W + ΔW for the duration of the block (W restored exactly)."""
    lm = _lm(model)
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for name, lr in modules.items():
                try:
                    layer = lm.get_submodule(name)
                except AttributeError:
                    raise AdapterError(f"the model has no module {name!r}") from None
                w = getattr(layer, "base_layer", layer).weight
                if tuple(w.shape) != lr.shape:
                    raise AdapterError(f"{name}: ΔW is {lr.shape}, the weight {tuple(w.shape)}")
                saved.append((w, w.detach().clone()))
                w.add_(lr.dense().to(w))
        yield model
    finally:
        with torch.no_grad():
            for w, orig in saved:
                w.copy_(orig)


@torch.no_grad()
def layer_states(
    model: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]], positions: int = POSITIONS
) -> list[torch.Tensor]:
    """Each decoder layer's output at the first `positions` unpadded positions (float32, CPU)."""
    lm = _lm(model)
    device = next(lm.parameters()).device
    acc: list[list[torch.Tensor]] = []
    got = 0
    for b in batches:
        mask = b["attention_mask"].bool()
        out = lm(
            input_ids=b["input_ids"].to(device),
            attention_mask=b["attention_mask"].to(device),
            output_hidden_states=True,
        )
        hidden = out.hidden_states[1:]  # [0] is the embedding output
        if not acc:
            acc = [[] for _ in hidden]
        for store, h in zip(acc, hidden, strict=True):
            store.append(h[mask.to(h.device)].float().cpu())
        got += int(mask.sum())
        if got >= positions:
            break
    return [torch.cat(s)[:positions] for s in acc]


def _pair(model, modules, batches, positions) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    batches = list(batches)
    base = layer_states(model, batches, positions)
    with merged(model, modules):
        adapted = layer_states(model, batches, positions)
    return base, adapted


def adapter_cka(
    model: torch.nn.Module,
    modules: dict[str, LowRank],
    batches: Iterable[dict[str, torch.Tensor]],
    positions: int = POSITIONS,
) -> list[float]:
    """Linear CKA between base and adapted outputs of every decoder layer."""
    from loraport.port.align import cka_matrix  # the port package is heavy; only CKA needs it

    base, adapted = _pair(model, modules, batches, positions)
    return [float(cka_matrix([x], [y])[0, 0]) for x, y in zip(base, adapted, strict=True)]


def state_change(
    model: torch.nn.Module,
    modules: dict[str, LowRank],
    batches: Iterable[dict[str, torch.Tensor]],
    positions: int = POSITIONS,
) -> list[float]:
    """‖H_l − H⁰_l‖²_F / ‖H⁰_l‖²_F for every decoder layer (what `hidden_change` penalises)."""
    base, adapted = _pair(model, modules, batches, positions)
    return [
        float(((y.double() - x.double()) ** 2).sum() / (x.double() ** 2).sum().clamp_min(1e-300))
        for x, y in zip(base, adapted, strict=True)
    ]
