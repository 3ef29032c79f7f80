"""Which device models compute on: CPU, or a GPU where the machine has one.

    load_model("tiny-llama-y")                 # on the current device (below)
    with use_device("cuda"):                    # everything loaded in the block computes on the GPU
        train_lora(...)
    resolve_device("auto")                      # "cuda" when torch sees a GPU, else "cpu"

The current device is, in order: the innermost `use_device` block, the LORAPORT_DEVICE environment
variable, then "auto". Accepted names: auto, cpu, cuda, cuda:N, mps. Naming a device this machine does
not have is a one-line error, never a silent fall-back to the CPU.

Float results depend on the device (and on CPU, on the thread count), so the bench keys a study's cells
by the device they ran on; on a GPU, bench cells also switch on PyTorch's deterministic algorithms so
that a re-run gives the same per-item results.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import torch

from loraport.errors import LoraportError

ENV = "LORAPORT_DEVICE"
_current: ContextVar[str | None] = ContextVar("loraport_device", default=None)


def resolve_device(spec: str | torch.device | None = None) -> str:
    """The device name that `spec` (None: the current device) means on this machine."""
    if spec is None:
        spec = _current.get() or os.environ.get(ENV) or "auto"
    name = str(spec).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "cpu"
    kind, _, index = name.partition(":")
    if kind == "cpu" and not index:
        return "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise LoraportError(f"device {spec!r}: torch sees no CUDA GPU on this machine")
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise LoraportError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
        return name
    if kind == "mps" and not index:
        if not torch.backends.mps.is_available():
            raise LoraportError(f"device {spec!r}: torch sees no Apple GPU on this machine")
        return "mps"
    raise LoraportError(f"device {spec!r}: use auto, cpu, cuda, cuda:N or mps")


@contextlib.contextmanager
def use_device(spec: str | None) -> Iterator[str]:
    """Models loaded in the block compute on `spec` (None: leave the current device alone)."""
    name = resolve_device(spec)
    token = _current.set(name)
    try:
        yield name
    finally:
        _current.reset(token)


def module_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def to_device(batch: Mapping[str, Any], device: torch.device | str) -> dict[str, Any]:
    """A batch of keyword arguments with its tensors on `device` (other values unchanged)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@contextlib.contextmanager
def deterministic(device: str) -> Iterator[None]:
    """On a GPU, PyTorch's deterministic algorithms for the block (the default ones use atomics whose
    order varies between runs) and attention by the plain math kernel (the fused kernels' backward
    passes are not deterministic); on CPU nothing changes. Restores the previous settings."""
    if not device.startswith("cuda"):
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
