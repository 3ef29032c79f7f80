"""Atomic writes: nothing half-written is ever visible, and what is finished is as readable as a
plain open() / mkdir() would have made it (temporaries start private)."""

from __future__ import annotations

import os
import stat

import pytest

from loraport.io import atomic_dir, atomic_file


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_finished_artifacts_get_the_umask_permissions_of_a_plain_write(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_file(tmp_path / "summary.json") as fh:
            fh.write("{}")
        with atomic_dir(tmp_path / "adapter") as folder:
            (folder / "x").write_text("x")
        (tmp_path / "plain.txt").write_text("x")
        (tmp_path / "plain").mkdir()
    finally:
        os.umask(old)
    assert _mode(tmp_path / "summary.json") == _mode(tmp_path / "plain.txt") == 0o640
    assert _mode(tmp_path / "adapter") == _mode(tmp_path / "plain") == 0o750


def test_a_failed_write_leaves_nothing_and_keeps_the_old_artifact(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as fh:
        fh.write("half")
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "out") as folder:
        (folder / "half").write_text("x")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
