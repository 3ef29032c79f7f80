"""Atomic file and folder writes: write to a temporary sibling, then rename, so a crash or an
error never leaves a half-written artifact where a finished one is expected."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from loraport.errors import OutputExistsError


def check_output(path: str | Path, force: bool) -> Path:
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: output exists (pass --force to overwrite)")
    return path


def _umask() -> int:
    """This process's umask, read without changing it where Linux tells (/proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, directory: bool) -> None:
    """mkstemp / mkdtemp make private temporaries; the finished artifact gets the permissions a plain
    open() or mkdir() would have given it."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_dir(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path`, on error it vanishes."""
    path = check_output(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _publish_mode(tmp, directory=True)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[object]:
    """Open a temporary sibling of `path` for writing; rename over `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _publish_mode(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_yaml_mapping(path: Path, error: type[Exception], what: str) -> tuple[dict, object]:
    """A YAML file that must hold a mapping: (the parsed dict, its composed node, whose marks give
    the line of any key). Raises `error` with the file and line on unreadable or invalid YAML."""
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise error(f"{path}: {what} file not found") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None
    try:
        node, raw = yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise error(f"{path}{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping of {what} fields")
    return raw, node


def write_tensor_dir(
    path: str | Path, tensors: dict, meta: dict, *, json_name: str, state_name: str, force: bool = False
) -> Path:
    """A folder holding `json_name` (metadata) and `state_name` (safetensors), written atomically."""
    import json

    from safetensors.torch import save_file

    with atomic_dir(path, force=force) as tmp:
        save_file(tensors, tmp / state_name, metadata={"format": "pt"})
        (tmp / json_name).write_text(json.dumps(meta, indent=2) + "\n")
    return Path(path)


def read_tensor_dir(
    path: str | Path, *, json_name: str, state_name: str, error: type[Exception], what: str
) -> tuple[dict, dict]:
    """(metadata, tensors) of a `write_tensor_dir` folder; `error` naming the folder if unreadable."""
    import json

    from safetensors.torch import load_file

    path = Path(path)
    try:
        return json.loads((path / json_name).read_text()), load_file(path / state_name)
    except FileNotFoundError as e:
        raise error(f"{path}: not {what} ({Path(e.filename).name} missing)") from None
    except Exception as e:
        raise error(f"{path}: unreadable {what.split(' ', 1)[1]} ({type(e).__name__}: {e})") from None
