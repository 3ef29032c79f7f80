"""Turning a model spec into a local folder and a config, without loading any weights.

A spec is, tried in this order:

1. a name registered in `MODEL_SOURCES` (its function returns another spec, e.g. a path);
2. an existing local path: a transformers checkpoint folder (with config.json), that folder's
   config.json, or a `.gguf` file;
3. a hub id (`org/name`, optionally `@revision`) already in the local Hugging Face cache.
   Nothing is ever downloaded: the cache is read directly, and loads use local_files_only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loraport.errors import LoraportError, ModelLoadError, closest
from loraport.models.cache import cache_root, file_sha256
from loraport.registry import Registry

if TYPE_CHECKING:
    from transformers import PretrainedConfig

__all__ = [
    "GGUF_MARKER",
    "MODEL_SOURCES",
    "ModelRef",
    "hf_cache_dir",
    "load_config",
    "one_line",
    "resolve_model",
]

Kind = Literal["folder", "hub", "gguf"]

#: Named model sources: name -> function returning a spec (a path, a .gguf file or a hub id).
#: Other packages (the zoo, `loraport.models.real`) plug names in with
#: `@MODEL_SOURCES.register("name")`. The function runs on every resolve, so it should be cheap once
#: its artifact exists.
MODEL_SOURCES: Registry[Callable[[], str | os.PathLike[str]]] = Registry("model name", ModelLoadError)

#: Written last into a GGUF conversion folder; its presence means the conversion is complete.
GGUF_MARKER = "loraport-gguf.json"


@dataclass(frozen=True)
class FileFormat:
    """A single-file model format: `matches(path)` says whether a file is one (by suffix or magic
    bytes), `resolve(spec, path)` returns its ModelRef."""

    matches: Callable[[Path], bool]
    resolve: Callable[[str, Path], ModelRef]


#: Single-file model formats by name. A format module registers itself when imported
#: (`FILE_FORMATS.add("gguf", FileFormat(...))` in loraport.models.gguf) and is listed in
#: FORMAT_PLUGINS, so this module never imports it: the format module depends on this one only.
FILE_FORMATS: Registry[FileFormat] = Registry("model file format", ModelLoadError)
FORMAT_PLUGINS = ("loraport.models.gguf",)

_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)?)(?:@(?P<rev>[\w./-]+))?$")
#: The embedded zoo's build record (spec, loss curve, build seconds): metadata, not behaviour. Its
#: build time differs between two builds of byte-identical weights, so it stays out of fingerprints.
ZOO_MARKER = "zoo.json"
_SKIP_IN_FINGERPRINT = {GGUF_MARKER, ZOO_MARKER, "README.md", ".gitattributes"}


def one_line(exc: BaseException, limit: int = 240) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    msg = text[0].strip() if text else ""
    msg = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


@dataclass(frozen=True)
class ModelRef:
    """Where a base model lives locally and what it is.

    `path` is the transformers checkpoint folder the model loads from. For a GGUF spec it is the
    content-addressed conversion folder under `cache_root()/gguf/`, which exists once `load_model`
    has converted the file (`converted`). `config` is the transformers config; for an unconverted
    GGUF it is read from the file's metadata. `fingerprint` is a stable sha256 hex digest of the
    weights: of the .gguf file for GGUF specs, else of config.json, the weight files and the
    tokenizer files of the folder (file digests are remembered by path, size and mtime).
    """

    spec: str
    kind: Kind
    path: Path
    config: PretrainedConfig = field(repr=False, compare=False)
    model_type: str
    gguf_file: Path | None = None
    name: str | None = None
    hub_id: str | None = None
    revision: str | None = None

    @cached_property
    def fingerprint(self) -> str:
        if self.gguf_file is not None:
            return file_sha256(self.gguf_file)
        return folder_fingerprint(self.path)

    @property
    def converted(self) -> bool:
        """For a GGUF ref, whether the float checkpoint is in the cache (always True otherwise)."""
        return self.gguf_file is None or (self.path / GGUF_MARKER).is_file()

    def provenance(self) -> dict[str, Any]:
        """A JSON-ready record of this base model, for adapter and study provenance."""
        return {
            "spec": self.spec,
            "name": self.name,
            "kind": self.kind,
            "model_type": self.model_type,
            "fingerprint": self.fingerprint,
            "path": str(self.path),
            "gguf_file": str(self.gguf_file) if self.gguf_file else None,
            "hub_id": self.hub_id,
            "revision": self.revision,
        }


#: Every spec resolved in this process, so that writing an adapter can name its base the way PEFT
#: finds it (peft_base) without resolving anything again (a zoo name would build its model).
_RESOLVED: dict[str, ModelRef] = {}


def resolve_model(spec: str | os.PathLike[str] | ModelRef) -> ModelRef:
    """Find a model on disk and read its config (no weights). Raises ModelLoadError."""
    ref = _resolve(spec, depth=0)
    if not isinstance(spec, ModelRef):
        _RESOLVED[os.fspath(spec).strip()] = ref
    _RESOLVED.setdefault(ref.spec, ref)
    return ref


def peft_base(spec: str) -> str:
    """What an adapter's `base_model_name_or_path` should say for a base loraport knows as `spec`,
    so that PEFT's AutoPeftModelForCausalLM loads the base without loraport: the hub id of a hub
    model, else the absolute checkpoint folder (for a zoo or registered name, the folder it
    resolved to; for a GGUF, its float conversion in the cache once converted). A spec this process
    never resolved, or an unconverted GGUF, is kept as given.

        peft_base("tiny-llama-y")   # '…/site-packages/loraport/zoo/shipped/tiny-llama-y'
    """
    ref = _RESOLVED.get(spec)
    if ref is None:
        return spec
    if ref.kind == "hub" and ref.hub_id:
        return ref.hub_id
    if not ref.converted:
        return spec
    return str(ref.path)


def load_config(spec: str | os.PathLike[str] | ModelRef) -> PretrainedConfig:
    """The transformers config of a model spec: cheap, reads no weights."""
    return resolve_model(spec).config


def _resolve(spec: str | os.PathLike[str] | ModelRef, depth: int) -> ModelRef:
    if isinstance(spec, ModelRef):
        return spec
    text = os.fspath(spec).strip()
    if not text:
        raise ModelLoadError("empty model spec: give a folder, a .gguf file, a model name or a hub id")
    _load_name_plugins()
    if text in MODEL_SOURCES:
        if depth >= 8:
            raise ModelLoadError(f"model name {text!r}: its source resolves in a loop")
        try:
            target = MODEL_SOURCES.get(text)()
        except LoraportError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"model name {text!r}: its source failed ({one_line(exc)})") from exc
        return replace(_resolve(target, depth + 1), spec=text, name=text)
    path = Path(text).expanduser()
    if path.exists():
        return _resolve_path(text, path)
    if _looks_like_path(text):
        raise ModelLoadError(f"{path}: no such file or folder")
    match = _HUB_ID.match(text)
    if match and "/" in match["repo"]:
        snapshot, commit = _hub_snapshot(match["repo"], match["rev"])
        if snapshot is None:
            raise ModelLoadError(
                f"{text}: no such local path, and {match['repo']!r} is not in the local Hugging Face cache "
                f"({hf_cache_dir()}); loraport never downloads, so fetch it where there is network or "
                "pass a local folder"
            )
        ref = _resolve_path(text, snapshot)
        return replace(ref, kind="hub", hub_id=match["repo"], revision=commit)
    if match:  # a bare name: maybe a canonical hub repo ("gpt2") in the cache
        snapshot, commit = _hub_snapshot(match["repo"], match["rev"])
        if snapshot is not None:
            ref = _resolve_path(text, snapshot)
            return replace(ref, kind="hub", hub_id=match["repo"], revision=commit)
    valid = ", ".join(MODEL_SOURCES.names()) or "none registered"
    raise ModelLoadError(
        f"{text!r}: not a local path, a registered model name{closest(text, MODEL_SOURCES.names())} "
        f"or a cached hub id (registered names: {valid})"
    )


#: Modules that register model names when imported (the zoo depends on this package, so it is
#: imported lazily, on the first resolve, rather than from here at import time).
NAME_PLUGINS = ("loraport.zoo",)


def _load_name_plugins() -> None:
    _load_plugins(NAME_PLUGINS)


def _load_plugins(modules: tuple[str, ...]) -> None:
    import importlib

    for module in modules:
        importlib.import_module(module)


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith((".", "/", "~"))
        or "\\" in text
        or text.count("/") > 1
        or text.lower().endswith((".gguf", ".json", ".safetensors"))
    )


def _resolve_path(spec: str, path: Path) -> ModelRef:
    if path.is_dir():
        config = read_folder_config(path)
        return ModelRef(
            spec=spec, kind="folder", path=path.resolve(), config=config, model_type=config.model_type
        )
    if path.is_file():
        if path.name == "config.json":
            return _resolve_path(spec, path.parent)
        _load_plugins(FORMAT_PLUGINS)
        for name in FILE_FORMATS:
            fmt = FILE_FORMATS.get(name)
            if fmt.matches(path):
                return fmt.resolve(spec, path)
        raise ModelLoadError(f"{path}: not a model folder, a config.json or a .gguf file")
    raise ModelLoadError(f"{path}: not a regular file or folder")


def read_folder_config(folder: Path) -> PretrainedConfig:
    """The transformers config of a checkpoint folder, with one-line errors naming the file."""
    cfg = folder / "config.json"
    if not cfg.is_file():
        ggufs = sorted(p.name for p in folder.glob("*.gguf"))
        hint = f"; it holds {ggufs[0]}, pass that file instead" if ggufs else ""
        raise ModelLoadError(f"{folder}: no config.json, so not a transformers checkpoint folder{hint}")
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{cfg}: unreadable config ({one_line(exc)})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{cfg}: unreadable config (expected a JSON object, got {type(data).__name__})")
    model_type = data.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ModelLoadError(f"{cfg}: unreadable config (no model_type field)")
    import transformers
    from transformers import CONFIG_MAPPING, AutoConfig

    if model_type not in CONFIG_MAPPING:
        raise ModelLoadError(
            f"{cfg}: unknown model_type {model_type!r}{closest(model_type, CONFIG_MAPPING.keys())} "
            f"(transformers {transformers.__version__} does not know it)"
        )
    try:
        return AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        raise ModelLoadError(f"{cfg}: unreadable config ({one_line(exc)})") from exc


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, from the environment at call time."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def _hub_snapshot(repo: str, revision: str | None) -> tuple[Path | None, str | None]:
    """(snapshot folder, commit) of a model repo in the local hub cache, or (None, None).

    Reads the cache layout directly (models--org--name/refs/<rev>, snapshots/<commit>), so it
    cannot touch the network.
    """
    root = hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    if not root.is_dir():
        return None, None
    rev = revision or "main"
    commit = rev
    ref_file = root / "refs" / rev
    if ref_file.is_file():
        commit = ref_file.read_text().strip()
    snapshot = root / "snapshots" / commit
    if not snapshot.is_dir():
        return None, None
    return snapshot, commit


def folder_fingerprint(folder: Path) -> str:
    """sha256 over (name, content sha256) of every top-level file that shapes the model's
    behaviour: config, weights, tokenizer, generation config (docs and licences are skipped)."""
    h = hashlib.sha256()
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        name = entry.name
        if (
            name.startswith(".")
            or name in _SKIP_IN_FINGERPRINT
            or name.lower().endswith((".md", ".txt.lock", ".lock"))
            or name.upper().startswith("LICENSE")
            or not entry.is_file()
        ):
            continue
        h.update(f"{name}\0{_content_digest(entry)}\n".encode())
    return h.hexdigest()


def _content_digest(path: Path) -> str:
    # In the hub cache, LFS files are symlinks to blobs named by their sha256: use that name.
    if path.is_symlink():
        blob = Path(os.readlink(path)).name
        if len(blob) == 64 and all(c in "0123456789abcdef" for c in blob):
            return blob
    return file_sha256(path)


def gguf_cache_dir(digest: str) -> Path:
    """The conversion folder for a GGUF file with this sha256."""
    return cache_root() / "gguf" / digest


def _install_peft_base() -> None:
    # adapters is a leaf package and cannot import this one, so the resolver is handed to it here
    from loraport.adapters.peft_io import set_base_resolver

    set_base_resolver(peft_base)


_install_peft_base()
