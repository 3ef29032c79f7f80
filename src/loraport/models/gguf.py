"""GGUF files: validate, read the config cheaply, and convert once to a cached float checkpoint.

De-quantizing a GGUF takes 20-110 s on a 2-core CPU machine (SmolLM2-135M ≈ 23 s,
Gemma-3-270M ≈ 106 s with its 262k-token tokenizer), so `convert_gguf` does it once per file
content: the float32 safetensors checkpoint (and the tokenizer the GGUF describes) is saved with
`save_pretrained` into `cache_root()/gguf/<sha256 of the .gguf>/`, written to a temporary folder
and renamed into place, under a file lock so parallel workers convert only once. The config read
from the GGUF metadata (several seconds for a large vocabulary) is cached beside it as
`<sha256>.config.json`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import importlib.util
import json
import logging
import math
import mmap
import os
import struct
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraport.errors import ModelLoadError
from loraport.io import atomic_dir, atomic_file
from loraport.models.cache import file_lock, file_sha256
from loraport.models.resolve import (
    FILE_FORMATS,
    GGUF_MARKER,
    FileFormat,
    ModelRef,
    gguf_cache_dir,
    one_line,
    read_folder_config,
)

if TYPE_CHECKING:
    from transformers import PretrainedConfig

__all__ = ["STATS", "convert_gguf", "ensure_converted", "resolve_gguf"]

log = logging.getLogger("loraport.models")

#: Counters for tests and diagnostics: how many GGUF files this process de-quantized.
STATS: dict[str, int] = {"gguf_conversions": 0}


def resolve_gguf(spec: str, path: Path) -> ModelRef:
    """A ModelRef for a .gguf file: validated header, content digest, config (no weights)."""
    path = path.resolve()
    if not _has_magic(path):
        _check_header(path)  # raises with the reason
    digest = file_sha256(path)
    dest = gguf_cache_dir(digest)
    converted = (dest / GGUF_MARKER).is_file()
    config = read_folder_config(dest) if converted else _gguf_config(path, digest)
    return ModelRef(
        spec=spec, kind="gguf", path=dest, config=config, model_type=config.model_type, gguf_file=path
    )


def _has_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"GGUF"
    except OSError:
        return False


FILE_FORMATS.add("gguf", FileFormat(lambda p: p.suffix.lower() == ".gguf" or _has_magic(p), resolve_gguf))


def _check_header(path: Path) -> None:
    """Raise ModelLoadError unless `path` has a parseable GGUF header whose tensors fit the file."""
    try:
        import gguf
    except ImportError:
        raise ModelLoadError(
            f"{path}: reading GGUF files needs the 'gguf' package (pip install gguf, or loraport[gguf])"
        ) from None
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelLoadError(f"{path}: unreadable ({one_line(exc)})") from None
    if magic != b"GGUF":
        raise ModelLoadError(f"{path}: not a GGUF file (starts with {magic!r}, not b'GGUF')")
    try:
        arch, tensors, data_start, size = _read_layout(path)
    except (struct.error, ValueError, UnicodeDecodeError, OverflowError, MemoryError) as exc:
        raise ModelLoadError(f"{path}: corrupt GGUF header ({one_line(exc)})") from None
    if not tensors:
        raise ModelLoadError(f"{path}: corrupt GGUF (it holds no tensors)")
    end = data_start
    for name, dims, ggml_type, offset in tensors:
        try:
            block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
        except (ValueError, KeyError):
            raise ModelLoadError(
                f"{path}: corrupt GGUF (tensor {name} has unknown ggml type {ggml_type})"
            ) from None
        end = max(end, data_start + offset + math.prod(dims) // block * type_size)
    if end > size:
        raise ModelLoadError(
            f"{path}: corrupt GGUF (truncated: tensor data needs {end} bytes, file has {size})"
        )
    supported = _supported_architectures()
    if supported and arch not in supported:
        import transformers

        raise ModelLoadError(
            f"{path}: GGUF architecture {arch!r} is not supported by transformers {transformers.__version__}"
        )


def _supported_architectures() -> set[str]:
    names: set[str] = set()
    with contextlib.suppress(ImportError):
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

        names |= set(GGUF_SUPPORTED_ARCHITECTURES)
    with contextlib.suppress(ImportError):
        from transformers.integrations.gguf.utils import GGUF_ARCHS

        names |= set(GGUF_ARCHS)
    return names


_SCALAR = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


def _read_layout(path: Path) -> tuple[str, list[tuple[str, tuple[int, ...], int, int]], int, int]:
    """(architecture, [(name, ggml dims, ggml type, offset)], data start, file size) of a GGUF,
    reading only its header (strings in metadata arrays are skipped, not decoded)."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        size = len(mm)
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", mm, 4)
        if version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {version}")
        if n_tensors > size or n_kv > size:
            raise ValueError("implausible tensor or metadata count")

        def string(pos: int) -> tuple[bytes, int]:
            (length,) = struct.unpack_from("<Q", mm, pos)
            if pos + 8 + length > size:
                raise ValueError("string runs past the end of the file")
            return mm[pos + 8 : pos + 8 + length], pos + 8 + length

        def skip(pos: int, vtype: int) -> int:
            if vtype in _SCALAR:
                return pos + struct.calcsize(_SCALAR[vtype])
            if vtype == 8:
                return string(pos)[1]
            if vtype == 9:
                etype, count = struct.unpack_from("<IQ", mm, pos)
                pos += 12
                if etype in _SCALAR:
                    pos += count * struct.calcsize(_SCALAR[etype])
                    if pos > size:
                        raise ValueError("array runs past the end of the file")
                    return pos
                for _ in range(count):
                    pos = skip(pos, etype)
                return pos
            raise ValueError(f"unknown metadata value type {vtype}")

        pos, arch, alignment = 24, None, 32
        for _ in range(n_kv):
            key, pos = string(pos)
            (vtype,) = struct.unpack_from("<I", mm, pos)
            pos += 4
            if key == b"general.architecture" and vtype == 8:
                raw, pos = string(pos)
                arch = raw.decode("utf-8")
            elif key == b"general.alignment" and vtype in _SCALAR:
                (alignment,) = struct.unpack_from(_SCALAR[vtype], mm, pos)
                pos = skip(pos, vtype)
            else:
                pos = skip(pos, vtype)
        if arch is None:
            raise ValueError("no general.architecture in the metadata")
        tensors = []
        for _ in range(n_tensors):
            raw, pos = string(pos)
            (n_dims,) = struct.unpack_from("<I", mm, pos)
            if n_dims > 8:
                raise ValueError(f"tensor with {n_dims} dimensions")
            dims = struct.unpack_from(f"<{n_dims}Q", mm, pos + 4)
            ggml_type, offset = struct.unpack_from("<IQ", mm, pos + 4 + 8 * n_dims)
            pos += 4 + 8 * n_dims + 12
            tensors.append((raw.decode("utf-8"), tuple(dims), ggml_type, offset))
        data_start = (pos + alignment - 1) // alignment * alignment
    return arch, tensors, data_start, size


def _gguf_config(path: Path, digest: str) -> PretrainedConfig:
    from transformers import CONFIG_MAPPING, AutoConfig

    cached = gguf_cache_dir(digest).with_name(f"{digest}.config.json")
    with contextlib.suppress(OSError, ValueError, KeyError):
        data = json.loads(cached.read_text(encoding="utf-8"))
        return CONFIG_MAPPING[data["model_type"]].from_dict(data)
    _check_header(path)  # first sight of this content: validate before parsing it
    try:
        config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"{path}: corrupt or unsupported GGUF ({one_line(exc)})") from exc
    with contextlib.suppress(OSError), atomic_file(cached) as fh:
        fh.write(config.to_json_string(use_diff=False))  # type: ignore[attr-defined]
    return config


def ensure_converted(ref: ModelRef) -> ModelRef:
    """The same ref, with its GGUF converted into the cache and its config read from there."""
    if ref.gguf_file is None:
        return ref
    folder = convert_gguf(ref.gguf_file, digest=ref.fingerprint)
    return replace(ref, path=folder, config=read_folder_config(folder))


def convert_gguf(gguf_file: str | Path, *, digest: str | None = None) -> Path:
    """De-quantize `gguf_file` once into a float32 safetensors checkpoint folder and return it.

    The folder is `cache_root()/gguf/<sha256>/` with the model, the tokenizer (when the GGUF
    describes one) and `loraport-gguf.json` recording the source, timings and versions. A folder
    that is already complete is returned as is.
    """
    path = Path(gguf_file).resolve()
    digest = digest or file_sha256(path)
    dest = gguf_cache_dir(digest)
    if (dest / GGUF_MARKER).is_file():
        return dest
    _check_header(path)
    with file_lock(dest.with_name(f"{digest}.lock")):
        if (dest / GGUF_MARKER).is_file():  # another process finished it while we waited
            return dest
        log.info("converting %s to a float checkpoint in %s (once; may take a minute)", path, dest)
        start = time.perf_counter()
        with atomic_dir(dest, force=True) as tmp:
            info = _convert_into(path, tmp)
            info.update(
                source=str(path),
                sha256=digest,
                size=path.stat().st_size,
                seconds=round(time.perf_counter() - start, 2),
                converted_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                versions=_versions(),
            )
            (tmp / GGUF_MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        STATS["gguf_conversions"] += 1
        log.info("converted %s in %.1f s", path.name, info["seconds"])
    return dest


def _convert_into(path: Path, out: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("accelerate") is None:
        raise ModelLoadError(
            f"{path}: converting a GGUF needs the 'accelerate' package (pip install accelerate)"
        )
    kwargs: dict[str, Any] = {"gguf_file": path.name, "dtype": torch.float32, "local_files_only": True}
    try:
        from transformers import GgufConfig
    except ImportError:
        try:
            from transformers.utils.quantization_config import GgufConfig
        except ImportError:
            GgufConfig = None
    if GgufConfig is not None:  # keep transformers from leaving weights in GGUF blocks
        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    t0 = time.perf_counter()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), **kwargs)
    except Exception as exc:
        raise ModelLoadError(f"{path}: corrupt or unsupported GGUF ({one_line(exc)})") from exc
    model_seconds = time.perf_counter() - t0

    # Leave a plain dense model behind: no quantizer, no quantization_config in config.json.
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    bad = [n for n, p in model.named_parameters() if p.dtype != torch.float32]
    if bad:
        raise ModelLoadError(f"{path}: de-quantization left {len(bad)} non-float32 tensors (e.g. {bad[0]})")
    tied = check_tied(model, path)
    model.save_pretrained(out)

    tokenizer_error, special = None, {}
    t0 = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(path.parent), gguf_file=path.name, local_files_only=True
        )
        special = _set_special_tokens(tokenizer, path)
        tokenizer.save_pretrained(out)
    except Exception as exc:
        tokenizer_error = one_line(exc)
        log.warning("%s: no tokenizer could be built from the GGUF (%s)", path, tokenizer_error)
    return {
        "model_type": model.config.model_type,
        "tie_word_embeddings": tied,
        "model_seconds": round(model_seconds, 2),
        "tokenizer_seconds": round(time.perf_counter() - t0, 2),
        "tokenizer": tokenizer_error is None,
        "tokenizer_error": tokenizer_error,
        "special_tokens_set": special,
    }


#: GGUF metadata keys of the special tokens a tokenizer must agree with, by tokenizer attribute.
_SPECIAL_KEYS = {
    "bos": "tokenizer.ggml.bos_token_id",
    "eos": "tokenizer.ggml.eos_token_id",
    "pad": "tokenizer.ggml.padding_token_id",
}


def _set_special_tokens(tokenizer: Any, path: Path) -> dict[str, int]:
    """Make the tokenizer's BOS/EOS/PAD the ones the GGUF's metadata names (transformers 5.17's GGUF
    tokenizer conversion dropped a llama GGUF's EOS id, 5.23's keeps it); returns what it changed."""
    from gguf import GGUFReader

    fields = GGUFReader(path).fields
    changed = {}
    for attr, key in _SPECIAL_KEYS.items():
        field = fields.get(key)
        if field is None or not field.data:
            continue
        tid = int(field.parts[field.data[0]][0])
        if not 0 <= tid < len(tokenizer) or getattr(tokenizer, f"{attr}_token_id") == tid:
            continue
        setattr(tokenizer, f"{attr}_token", tokenizer.convert_ids_to_tokens(tid))
        changed[attr] = tid
    return changed


@functools.lru_cache(maxsize=16)
def gguf_adds_bos(path: str | os.PathLike[str]) -> bool | None:
    """The GGUF's `tokenizer.ggml.add_bos_token` flag: whether its model expects BOS before every text
    (Gemma's does, and degrades to repetition without it); None when the file does not say.
    transformers' GGUF tokenizer conversion does not carry this flag in every version (5.17 drops it
    for Gemma-3, 5.24 keeps it), so raw prompts take it from the file itself."""
    from gguf import GGUFReader

    field = GGUFReader(path).fields.get("tokenizer.ggml.add_bos_token")
    if field is None or not field.data:
        return None
    return bool(field.parts[field.data[0]][0])


def check_tied(model: Any, where: str | os.PathLike[str]) -> bool:
    """Make sure a model whose config ties embeddings really shares one tensor; return whether tied."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if not getattr(config, "tie_word_embeddings", False):
        return False
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    if out is None or inp is None:
        return False
    if out.weight is not inp.weight:
        model.tie_weights()
        out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    if out.weight is not inp.weight:
        raise ModelLoadError(f"{where}: config ties the embeddings but lm_head does not share their weight")
    return True


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("transformers", "torch", "gguf", "safetensors", "tokenizers"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out
