"""Base models: the only place that knows how models are found on disk.

    from loraport.models import load_model, load_config, resolve_model
    model, tokenizer, ref = load_model("path/to/checkpoint")      # transformers folder
    model, tokenizer, ref = load_model("file.gguf")               # converted once, then cached
    model, tokenizer, ref = load_model("org/name")                # hub id, local HF cache only
    model, tokenizer, ref = load_model("smollm2-135m-instruct")   # a name in MODEL_SOURCES
    config = load_config(spec)                                    # config only, no weights

Other packages add names with `@MODEL_SOURCES.register("name")` on a function returning a spec.
Derived artifacts (GGUF conversions, file digests, assembled real checkpoints) live under
`cache_root()`: `$LORAPORT_CACHE` or `~/.cache/loraport`.
"""

from loraport.models import real as real
from loraport.models.cache import cache_root, file_sha256
from loraport.models.gguf import STATS, convert_gguf
from loraport.models.load import load_model, load_tokenizer
from loraport.models.real import gemma3_270m_gguf, smollm2_gguf
from loraport.models.resolve import MODEL_SOURCES, ModelRef, hf_cache_dir, load_config, resolve_model

__all__ = [
    "MODEL_SOURCES",
    "STATS",
    "ModelRef",
    "cache_root",
    "convert_gguf",
    "file_sha256",
    "gemma3_270m_gguf",
    "hf_cache_dir",
    "load_config",
    "load_model",
    "load_tokenizer",
    "resolve_model",
    "smollm2_gguf",
]
