"""Building and caching the embedded base models.

    from loraport.zoo import build, zoo_specs
    path = build("tiny-llama-y")        # cached: instant after the first time
    load_model("tiny-llama-y")          # names are registered in loraport.models.MODEL_SOURCES

A name the package ships (`shipped/`, see loraport.zoo.shipped) loads from the shipped files,
checked against their sha256, with no build: a build's float results depend on the CPU, so everyone
shares one. Otherwise, and with `from_scratch=True`, a model is built into
`cache_root()/zoo/<name>-<digest>/`, where the digest covers its entry in zoo.yaml, the corpus size
and the build code's version: an edited spec is a different model, never a stale one. Folders appear atomically (built in a temporary sibling, then renamed) and under a
lock, so parallel workers build each model once. `zoo.json` in the folder records the spec, the
loss curve, the build time and the library versions.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import cache, partial
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field

from loraport import __version__
from loraport.errors import ModelLoadError
from loraport.io import atomic_dir
from loraport.models.cache import cache_root, file_lock
from loraport.models.resolve import ZOO_MARKER
from loraport.parallel import cpu_count, process_pool, torch_threads
from loraport.zoo.shipped import shipped_entry, shipped_folder, shipped_root

#: Bump when the build code changes what a spec produces.
BUILD_VERSION = 2
#: torch threads a build uses, whatever the machine: CPU float results depend on the thread count, so
#: a fixed count gives the same weights on a 2-core laptop and a 64-core server. Machines with more
#: cores build independent models side by side instead (`build_many`). Measured on 2 vCPUs: X and Y
#: built one after the other on 2 threads take 125 + 126 s; side by side on 1 thread each, 302 s.
BUILD_THREADS = 2
CORPUS_LINES = 60_000
MARKER = ZOO_MARKER


class Pretrain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: int = Field(ge=1)
    batch: int = Field(ge=1)
    block: int = Field(ge=8)
    lr: float = Field(gt=0)


class ZooSpec(BaseModel):
    """One embedded base model, as zoo.yaml states it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    role: Literal["source", "target", "tier"]
    family: str
    tokenizer: Literal["bytes", "bpe"]
    seed: int
    corpus_seed: int
    config: dict[str, Any]
    pretrain: Pretrain
    corpus_lines: int = CORPUS_LINES

    def digest(self) -> str:
        text = json.dumps(
            {
                "build": BUILD_VERSION,
                "threads": BUILD_THREADS,
                "code": code_digest(),
                "corpus": corpus_digest(self.corpus_seed),
                **self.model_dump(mode="json"),
            },
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def folder(self) -> Path:
        return cache_root() / "zoo" / f"{self.name}-{self.digest()}"

    def with_overrides(self, **pretrain: Any) -> ZooSpec:
        """A variant with other pretraining settings (e.g. fewer steps for tests); its own digest."""
        return self.model_copy(update={"pretrain": self.pretrain.model_copy(update=pretrain)})


#: The modules whose code decides what a build produces (corpus, tokenizers, pretraining loop).
BUILD_CODE = (
    "loraport.zoo.tokenizer",
    "loraport.zoo.pretrain",
    "loraport.train.loop:run_steps",
    "loraport.train.loop:lr_at",
    "loraport.zoo.build:_build_into",
)
#: Corpus lines hashed per corpus seed: the corpus is content-addressed by what it contains (an
#: edit to a generator changes its lines), not by the source of the modules that happen to hold it.
CORPUS_SAMPLE = 3000


@cache
def code_digest() -> str:
    """sha256 over the code that turns a spec into weights: editing the tokenizers, the pretraining
    loop or the build gives every zoo model a new address instead of reusing a stale one."""
    import importlib
    import inspect

    h = hashlib.sha256()
    for name in BUILD_CODE:
        module, _, attr = name.partition(":")
        obj = importlib.import_module(module)
        h.update(inspect.getsource(getattr(obj, attr) if attr else obj).encode())
    return h.hexdigest()[:16]


@cache
def corpus_digest(seed: int) -> str:
    from loraport.tasks import pretraining_corpus

    return hashlib.sha256("\n".join(pretraining_corpus(CORPUS_SAMPLE, seed=seed)).encode()).hexdigest()[:16]


@cache
def zoo_specs() -> dict[str, ZooSpec]:
    data = yaml.safe_load(resources.files("loraport.zoo").joinpath("zoo.yaml").read_text())
    return {name: ZooSpec(name=name, **entry) for name, entry in data["models"].items()}


def get_spec(name: str) -> ZooSpec:
    specs = zoo_specs()
    if name not in specs:
        from loraport.errors import closest

        raise ModelLoadError(f"unknown zoo model {name!r}{closest(name, specs)}; valid: {', '.join(specs)}")
    return specs[name]


def is_shipped(spec: ZooSpec | str) -> bool:
    """Whether the package ships this model (files not checked here; `build` checks them)."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    return shipped_entry(spec) is not None


def is_built(spec: ZooSpec | str) -> bool:
    """Whether loading the model needs no build: shipped, or built in the cache."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    return is_shipped(spec) or (spec.folder() / MARKER).is_file()


def build(spec: ZooSpec | str, *, progress: bool = True, from_scratch: bool = False) -> Path:
    """The folder of a zoo model: the shipped one (checked against its sha256, ModelLoadError naming
    a bad file), else the cached build, built first if needed (seeded). `from_scratch` ignores both
    and rebuilds into the cache folder."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    if not from_scratch:
        shipped = shipped_folder(spec)
        if shipped is not None:
            return shipped
    folder = spec.folder()
    if (folder / MARKER).is_file() and not from_scratch:
        return folder
    with file_lock(folder.parent / f".{folder.name}.lock"):
        if (folder / MARKER).is_file() and not from_scratch:
            return folder
        with atomic_dir(folder, force=True) as tmp, torch_threads(BUILD_THREADS):
            _build_into(spec, tmp, progress)
    return folder


def build_many(
    names: list[ZooSpec | str],
    *,
    workers: int | None = None,
    progress: bool = True,
    from_scratch: bool = False,
) -> list[Path]:
    """Build every model of `names` that is missing (with `from_scratch`: every one), up to
    `workers` at a time (default: cores // BUILD_THREADS), each in its own process; returns their
    folders in the order of `names`."""
    specs = [get_spec(n) if isinstance(n, str) else n for n in names]  # unknown names fail first
    todo = list({s.folder(): s for s in specs if from_scratch or not is_built(s)}.values())
    n = min(len(todo), workers or cpu_count() // BUILD_THREADS)
    done: dict[Path, Path] = {}
    if n > 1:
        with process_pool(n) as pool:
            list(pool.map(partial(_build_quietly, from_scratch=from_scratch), todo))
        done = {s.folder(): s.folder() for s in todo} if from_scratch else {}
    for s in specs:
        if s.folder() not in done:
            done[s.folder()] = build(s, progress=progress, from_scratch=from_scratch)
    return [done[s.folder()] for s in specs]


def _build_quietly(spec: ZooSpec, from_scratch: bool = False) -> None:
    build(spec, progress=False, from_scratch=from_scratch)


def _build_into(spec: ZooSpec, out: Path, progress: bool) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    from loraport.tasks import pretraining_corpus
    from loraport.zoo.pretrain import pretrain
    from loraport.zoo.tokenizer import build_tokenizer

    start = time.perf_counter()
    lines = pretraining_corpus(spec.corpus_lines, seed=spec.corpus_seed)
    tokenizer = build_tokenizer(spec.tokenizer, lines)
    torch.manual_seed(spec.seed)
    config = AutoConfig.for_model(
        spec.family,
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        **spec.config,
    )
    model = AutoModelForCausalLM.from_config(config)
    losses = pretrain(
        model,
        tokenizer,
        lines,
        seed=spec.seed,
        progress=progress,
        desc=f"pretrain {spec.name}",
        **spec.pretrain.model_dump(),
    )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    seconds = time.perf_counter() - start
    record = {
        "name": spec.name,
        "digest": spec.digest(),
        "spec": spec.model_dump(mode="json"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4),
        "losses": [round(x, 4) for x in losses[:: max(1, len(losses) // 100)]],
        "seconds": round(seconds, 1),
        "versions": {"loraport": __version__, "torch": torch.__version__},
        "threads": BUILD_THREADS,
    }
    (out / MARKER).write_text(json.dumps(record, indent=1) + "\n")


def build_record(spec: ZooSpec | str) -> dict[str, Any] | None:
    """The build record (zoo.json) of the shipped model, else of the cached build, else None."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    path = (shipped_root() / spec.name if is_shipped(spec) else spec.folder()) / MARKER
    return json.loads(path.read_text()) if path.is_file() else None
