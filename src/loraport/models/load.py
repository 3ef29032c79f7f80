"""Loading a base model and its tokenizer from any spec `resolve_model` understands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from loraport.device import resolve_device
from loraport.errors import ModelLoadError
from loraport.models.chat import attach, chat_mode, resolve_chat
from loraport.models.gguf import check_tied, ensure_converted, gguf_adds_bos
from loraport.models.resolve import ModelRef, one_line, resolve_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["load_model", "load_tokenizer"]

_SAFE_WEIGHTS = ("*.safetensors",)
_PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "vocab.json",
    "spiece.model",
)


def load_model(
    spec: str | os.PathLike[str] | ModelRef,
    *,
    dtype: torch.dtype | str = torch.float32,
    allow_pickle: bool = False,
    tokenizer: bool = True,
    device: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | None, ModelRef]:
    """Load a causal LM (in eval mode), its tokenizer (None when the checkpoint has none) and its ref.
    The model is on `device` (None: the current one, see `loraport.device`).

    A GGUF spec is converted once into the cache (see `loraport.models.gguf`) and then loaded
    from there. Only safetensors weights are read unless `allow_pickle=True`. Every parameter must
    come from the checkpoint (nothing silently random-initialised), and tied embeddings are checked
    to share one tensor. Never touches the network. Errors are one-line ModelLoadErrors.

    The tokenizer carries the chat format of the current mode (`loraport.models.chat`: the model's
    own template under "auto", the default), which training, generation and scoring all apply.
    """
    where = resolve_device(device)  # an unusable device fails before the weights are read
    ref = ensure_converted(resolve_model(spec))
    folder = ref.path
    _check_weights(folder, allow_pickle)
    torch_dtype = _dtype(dtype)

    from transformers import AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    if type(ref.config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise ModelLoadError(
            f"{folder}: model_type {ref.model_type!r} has no causal-LM class in transformers"
        )
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            str(folder),
            config=ref.config,
            dtype=torch_dtype,
            use_safetensors=None if allow_pickle else True,
            local_files_only=True,
            trust_remote_code=False,
            output_loading_info=True,
        )
    except Exception as exc:
        raise ModelLoadError(f"{folder}: could not load the weights ({one_line(exc)})") from exc
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise ModelLoadError(
            f"{folder}: the checkpoint lacks {len(missing)} weight(s) its config needs (e.g. {missing[0]})"
        )
    mismatched = info.get("mismatched_keys") or ()
    if mismatched:
        raise ModelLoadError(f"{folder}: {len(mismatched)} weight(s) do not match the config's shapes")
    check_tied(model, folder)
    if where != "cpu":
        model.to(where)
    model.eval()
    tok = _load_tokenizer(folder) if tokenizer else None
    return model, None if tok is None else _with_chat(tok, ref), ref


def load_tokenizer(spec: str | os.PathLike[str] | ModelRef) -> PreTrainedTokenizerBase | None:
    """The tokenizer of a model spec (converting a GGUF first if needed), or None if it has none."""
    ref = ensure_converted(resolve_model(spec))
    tok = _load_tokenizer(ref.path)
    return None if tok is None else _with_chat(tok, ref)


def _with_chat(tok: PreTrainedTokenizerBase, ref: ModelRef) -> PreTrainedTokenizerBase:
    """The tokenizer with its chat format attached (a GGUF's own BOS flag taken into account)."""
    add_bos = gguf_adds_bos(ref.gguf_file) if ref.gguf_file is not None else None
    return attach(tok, resolve_chat(tok, ref.config, chat_mode(), add_bos=add_bos))


def _load_tokenizer(folder: Path) -> PreTrainedTokenizerBase | None:
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        raise ModelLoadError(f"{folder}: tokenizer files present but unreadable ({one_line(exc)})") from exc


def _check_weights(folder: Path, allow_pickle: bool) -> None:
    safe = [p for pat in _SAFE_WEIGHTS for p in folder.glob(pat)]
    if safe:
        return
    pickled = sorted(p.name for pat in _PICKLE_WEIGHTS for p in folder.glob(pat))
    if not pickled:
        raise ModelLoadError(f"{folder}: no weight files (*.safetensors) beside config.json")
    if not allow_pickle:
        raise ModelLoadError(
            f"{folder}: only pickle weights ({pickled[0]}); loraport loads safetensors only, "
            "convert them or pass allow_pickle=True if you trust the source"
        )


def _dtype(dtype: Any) -> torch.dtype | str:
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ModelLoadError(f"unknown dtype {dtype!r} (use e.g. float32, bfloat16, float16 or auto)")
    return value
