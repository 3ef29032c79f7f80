"""Read and write PEFT LoRA folders (adapter_config.json + adapter_model.safetensors).

    ad = load_adapter("runs/gsm8k-qwen")          # lazy: factors are read tensor by tensor
    ad.lowrank("model.layers.3.self_attn.q_proj")  # LowRank with alpha/r (or alpha/√r) folded in
    save_adapter(out, {name: lowrank, ...}, rank=16, alpha=32, base_model="...", provenance={...})

Weights are read with safetensors' memory-mapped `safe_open`, so an adapter of tens of millions of
numbers costs memory only for the tensor in hand. Pickled `adapter_model.bin` files are refused
unless `allow_pickle=True`, and even then are read with torch's weights-only unpickler.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from loraport import __version__
from loraport.adapters.lowrank import LowRank
from loraport.errors import AdapterError
from loraport.io import atomic_dir

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_NAME = "adapter_model.bin"
PROVENANCE_KEY = "loraport"

_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}

_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<mod>.+)\.lora_(?P<ab>[AB])(?:\.[A-Za-z0-9_]+)?\.weight$")


@dataclass
class Adapter:
    """A LoRA adapter on disk: config, module list with ranks and scalings, lazily read factors."""

    path: Path
    config: dict[str, Any]
    ranks: dict[str, int]
    scalings: dict[str, float]
    shapes: dict[str, tuple[int, int]]  # module -> (out, in) of ΔW
    provenance: dict[str, Any] = field(default_factory=dict)
    _keys: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)  # module -> (A key, B key)
    _tensors: dict[str, torch.Tensor] | None = field(default=None, repr=False)  # in-memory (.bin)
    _header: dict[str, Any] = field(default_factory=dict, repr=False)  # safetensors header
    _data_start: int = 0

    @property
    def modules(self) -> list[str]:
        return list(self.ranks)

    @property
    def base_model(self) -> str | None:
        """The base as loraport named it when it wrote the adapter (a zoo or registered name, a
        folder, a hub id); else what adapter_config.json names, for adapters from other tools."""
        return self.provenance.get(BASE_SPEC_KEY) or self.config.get("base_model_name_or_path")

    @property
    def weights_file(self) -> Path:
        return self.path / (PICKLE_NAME if self._tensors is not None else WEIGHTS_NAME)

    def factors(self, module: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (A, B) as stored, float32, checked for NaN/Inf."""
        ka, kb = self._keys[module]
        if self._tensors is not None:
            A, B = self._tensors[ka], self._tensors[kb]
        else:
            with open(self.path / WEIGHTS_NAME, "rb") as fh:
                A, B = self._read(fh, ka), self._read(fh, kb)
        A, B = A.float(), B.float()
        for key, t in ((ka, A), (kb, B)):
            # A finite sum means every entry is finite, and costs a twentieth of isfinite(t).all()
            # (fits read every anchor's factors); only a sum that overflowed needs the full check.
            if not torch.isfinite(t.sum()) and not torch.isfinite(t).all():
                raise AdapterError(f"{self.weights_file}: tensor {key} contains NaN or Inf")
        return A, B

    def _read(self, fh: Any, key: str) -> torch.Tensor:
        # One pread per tensor at the offsets in the safetensors header: no mmap, so the process holds
        # only the tensors in hand (ports stream tens of adapters of 100+ MB each).
        info = self._header[key]
        start, stop = info["data_offsets"]
        buf = bytearray(stop - start)
        fh.seek(self._data_start + start)
        if fh.readinto(buf) != len(buf):
            raise AdapterError(f"{self.path / WEIGHTS_NAME}: truncated at tensor {key}")
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise AdapterError(
                f"{self.path / WEIGHTS_NAME}: tensor {key} has unsupported dtype {info['dtype']}"
            )
        return (
            torch.frombuffer(buf, dtype=dtype).reshape(info["shape"])
            if buf
            else torch.zeros(info["shape"], dtype=dtype)
        )

    def lowrank(self, module: str) -> LowRank:
        A, B = self.factors(module)
        return LowRank(B * self.scalings[module], A)

    def delta(self, module: str) -> torch.Tensor:
        return self.lowrank(module).dense()


def _scaling(alpha: float, r: int, rslora: bool) -> float:
    return alpha / math.sqrt(r) if rslora else alpha / r


def _pattern_value(pattern: dict[str, Any], module: str, default: Any) -> Any:
    # PEFT matches rank_pattern/alpha_pattern keys as regexes against the end of the module name.
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _targets_match(targets: Any, module: str) -> bool:
    if targets is None:
        return True
    if isinstance(targets, str):
        return targets == "all-linear" or re.fullmatch(targets, module) is not None
    return any(module == t or module.endswith("." + t) for t in targets)


def load_adapter(path: str | Path, *, allow_pickle: bool = False) -> Adapter:
    """Open and validate a PEFT LoRA folder. Raises AdapterError naming the file and field."""
    path = Path(path)
    if not path.is_dir():
        raise AdapterError(f"{path}: adapter folder not found")
    cfg_path = path / CONFIG_NAME
    if not cfg_path.is_file():
        raise AdapterError(f"{cfg_path}: missing (not a PEFT adapter folder)")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AdapterError(f"{cfg_path}: invalid JSON ({e})") from None
    if not isinstance(config, dict):
        raise AdapterError(f"{cfg_path}: expected a JSON object")
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise AdapterError(f"{cfg_path}: field peft_type={config.get('peft_type')!r}, only LORA is supported")
    for fld in ("r", "lora_alpha"):
        if not isinstance(config.get(fld), int | float) or config[fld] <= 0:
            raise AdapterError(f"{cfg_path}: field {fld}={config.get(fld)!r} must be a positive number")
    if config.get("use_dora"):
        raise AdapterError(f"{cfg_path}: field use_dora=true (DoRA adapters are not supported)")

    tensors: dict[str, torch.Tensor] | None = None
    provenance: dict[str, Any] = {}
    wpath = path / WEIGHTS_NAME
    if wpath.is_file():
        try:
            with safe_open(wpath, framework="pt") as fh:
                keys = list(fh.keys())
                shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in keys}
                meta = fh.metadata() or {}
        except Exception as e:  # safetensors raises several types for truncated/corrupt files
            raise AdapterError(f"{wpath}: unreadable safetensors ({type(e).__name__}: {e})") from None
        header, data_start = _read_header(wpath)
        for k, info in header.items():
            if info["dtype"] not in _DTYPES:
                raise AdapterError(f"{wpath}: tensor {k} has unsupported dtype {info['dtype']}")
        if PROVENANCE_KEY in meta:
            try:
                provenance = json.loads(meta[PROVENANCE_KEY])
            except json.JSONDecodeError:
                provenance = {}
    elif (path / PICKLE_NAME).is_file():
        if not allow_pickle:
            raise AdapterError(
                f"{path / PICKLE_NAME}: pickled weights refused (pass --allow-pickle if you trust this file)"
            )
        try:
            tensors = torch.load(path / PICKLE_NAME, map_location="cpu", weights_only=True)
        except Exception as e:
            raise AdapterError(f"{path / PICKLE_NAME}: unreadable ({type(e).__name__}: {e})") from None
        keys = list(tensors)
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        header, data_start = {}, 0
    else:
        raise AdapterError(f"{wpath}: missing")

    pairs: dict[str, dict[str, str]] = {}
    for k in keys:
        m = _KEY.match(k)
        if m is None:
            continue  # modules_to_save and other non-LoRA tensors are carried by PEFT, not ported
        pairs.setdefault(m["mod"], {})[m["ab"]] = k
    if not pairs:
        raise AdapterError(f"{wpath}: no lora_A/lora_B tensors found")

    rslora = bool(config.get("use_rslora", False))
    ranks, scalings, dshapes, kmap = {}, {}, {}, {}
    for mod in sorted(pairs, key=_natural_key):
        ab = pairs[mod]
        if set(ab) != {"A", "B"}:
            missing = "lora_B" if "A" in ab else "lora_A"
            raise AdapterError(f"{wpath}: module {mod} has no {missing} tensor")
        sa, sb = shapes[ab["A"]], shapes[ab["B"]]
        if len(sa) != 2 or len(sb) != 2 or sa[0] != sb[1]:
            raise AdapterError(
                f"{wpath}: module {mod} has lora_A {list(sa)} and lora_B {list(sb)} of mismatched rank"
            )
        r_cfg = int(_pattern_value(config.get("rank_pattern") or {}, mod, config["r"]))
        if sa[0] != r_cfg:
            raise AdapterError(
                f"{cfg_path}: field r={r_cfg} disagrees with {mod} in {WEIGHTS_NAME} (rank {sa[0]})"
            )
        if not _targets_match(config.get("target_modules"), mod):
            raise AdapterError(
                f"{cfg_path}: field target_modules={config.get('target_modules')!r} does not cover {mod} found in the weights"
            )
        alpha = float(_pattern_value(config.get("alpha_pattern") or {}, mod, config["lora_alpha"]))
        ranks[mod] = sa[0]
        scalings[mod] = _scaling(alpha, sa[0], rslora)
        dshapes[mod] = (sb[0], sa[1])
        kmap[mod] = (ab["A"], ab["B"])
    return Adapter(path, config, ranks, scalings, dshapes, provenance, kmap, tensors, header, data_start)


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def _natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def target_modules_for(modules: list[str], num_layers: int | None = None) -> list[str]:
    """Short names (q_proj) when a projection is adapted in every layer, full names otherwise, so PEFT
    creates LoRA layers exactly where the file has weights."""
    by_short: dict[str, list[str]] = {}
    for m in modules:
        by_short.setdefault(m.rsplit(".", 1)[-1], []).append(m)
    out: list[str] = []
    for short, mods in sorted(by_short.items()):
        if num_layers is not None and len(mods) == num_layers:
            out.append(short)
        else:
            out.extend(mods)
    return out


#: Provenance key of the base as loraport named it, when adapter_config.json names it otherwise.
BASE_SPEC_KEY = "base_model_spec"


def _as_given(spec: str) -> str:
    return spec


#: Turns a base spec into what adapter_config.json's base_model_name_or_path says: PEFT's
#: AutoPeftModelForCausalLM loads the base from there, so it should be a checkpoint folder or a hub
#: id, not a loraport name. loraport.models installs its resolver (adapters import no other loraport
#: package); without one the spec is written as given.
_peft_base: Callable[[str], str] = _as_given


def set_base_resolver(fn: Callable[[str], str]) -> None:
    """Install the function that maps a base spec to the base PEFT should load (see _peft_base)."""
    global _peft_base
    _peft_base = fn


def save_adapter(
    out: str | Path,
    modules: dict[str, LowRank],
    *,
    rank: int,
    alpha: float,
    base_model: str,
    num_layers: int | None = None,
    provenance: dict[str, Any] | None = None,
    use_rslora: bool = False,
    force: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a PEFT LoRA folder atomically. `modules` hold ΔW with scaling folded into B; the file stores
    B / scaling so PEFT's alpha/r (or alpha/√r) scaling reproduces ΔW exactly."""
    with atomic_dir(out, force=force) as tmp:
        write_adapter_files(
            tmp,
            modules,
            rank=rank,
            alpha=alpha,
            base_model=base_model,
            num_layers=num_layers,
            provenance=provenance,
            use_rslora=use_rslora,
            dtype=dtype,
        )
    return Path(out)


def write_adapter_files(
    folder: Path,
    modules: dict[str, LowRank],
    *,
    rank: int,
    alpha: float,
    base_model: str,
    num_layers: int | None = None,
    provenance: dict[str, Any] | None = None,
    use_rslora: bool = False,
    dtype: torch.dtype = torch.float32,
) -> None:
    """The two PEFT files of `save_adapter`, written into an existing `folder` (which the caller
    makes atomic, e.g. a training run writing checkpoints beside its final adapter)."""
    scaling = _scaling(alpha, rank, use_rslora)
    tensors: dict[str, torch.Tensor] = {}
    for name, lr in modules.items():
        if lr.rank != rank:
            raise ValueError(f"module {name} has rank {lr.rank}, expected {rank}")
        tensors[f"base_model.model.{name}.lora_A.weight"] = lr.A.to(dtype).contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = (lr.B / scaling).to(dtype).contiguous()
    prov = {"loraport_version": __version__, **(provenance or {})}
    peft_base = _peft_base(base_model) if base_model else base_model
    if peft_base != base_model:
        prov.setdefault(BASE_SPEC_KEY, base_model)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": peft_base,
        "r": rank,
        "lora_alpha": alpha,
        "use_rslora": use_rslora,
        "target_modules": target_modules_for(list(modules), num_layers),
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "use_dora": False,
    }  # provenance lives in the safetensors metadata: PEFT warns about unknown config keys
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, folder / WEIGHTS_NAME, metadata={"format": "pt", PROVENANCE_KEY: json.dumps(prov)})
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
