"""The embedded zoo: tiny base models built offline from the procedural corpus.

    from loraport.zoo import build, zoo_specs
    build("tiny-llama-y")                  # the shipped folder, its sha256 checked: no build
    build("tiny-llama-y", from_scratch=True)   # rebuilt from the build code: ~2-4 min on 2 cores
    load_model("tiny-qwen2-x")             # zoo names resolve (to the shipped files)

The default pair: `tiny-qwen2-x` (source: Qwen2, byte tokenizer, GQA) and `tiny-llama-y` (target:
Llama, BPE tokenizer, MHA); `tiny-llama-s` / `tiny-llama-y` / `tiny-llama-l` are three capacity
tiers of one family. Specs live in zoo.yaml. All four ship built with the package
(loraport.zoo.shipped): float results of a build depend on the CPU, so everyone loads the same bytes.
"""

from loraport.models.resolve import MODEL_SOURCES
from loraport.zoo.build import (
    BUILD_VERSION,
    ZooSpec,
    build,
    build_many,
    build_record,
    get_spec,
    is_built,
    is_shipped,
    zoo_specs,
)


def _register() -> None:
    for name in zoo_specs():
        if name not in MODEL_SOURCES:
            MODEL_SOURCES.add(name, lambda name=name: build(name))


_register()

DEFAULT_SOURCE = "tiny-qwen2-x"
DEFAULT_TARGET = "tiny-llama-y"

__all__ = [
    "BUILD_VERSION",
    "DEFAULT_SOURCE",
    "DEFAULT_TARGET",
    "ZooSpec",
    "build",
    "build_many",
    "build_record",
    "get_spec",
    "is_built",
    "is_shipped",
    "zoo_specs",
]
