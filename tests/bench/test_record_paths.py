"""Records name each evaluated adapter by a path that works from anywhere: relative to the run
directory when the adapter is in the run's own cache, absolute when it is in a shared cache."""

from __future__ import annotations

import json
from pathlib import Path

from loraport.bench import load_study, run_study


def adapter_paths(run: Path) -> list[str]:
    records = [json.loads(p.read_text()) for p in (run / "records").glob("*.json")]
    return [r["provenance"]["adapter"] for r in records if (r.get("provenance") or {}).get("adapter")]


def test_paths_in_the_runs_own_cache_are_relative_to_the_run(full_run):
    paths = adapter_paths(full_run)
    assert paths
    for p in paths:
        assert not Path(p).is_absolute() and p.startswith("cache/adapters/"), p
        assert (full_run / p / "adapter_config.json").is_file()


def test_paths_in_a_shared_cache_are_absolute_whatever_the_working_folder(
    mini_study, full_run, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    run_study(
        load_study(mini_study),
        Path("rel") / "run",  # a relative run folder, started from tmp_path
        cache=full_run / "cache",
        threads=1,
        progress=False,
        log=lambda s: None,
    )
    paths = adapter_paths(tmp_path / "rel" / "run")
    assert paths
    for p in paths:
        assert Path(p).is_absolute() and (Path(p) / "adapter_config.json").is_file(), p


def test_records_keep_the_same_sample_items_for_every_condition_of_a_task(full_run):
    records = [json.loads(p.read_text()) for p in (full_run / "records").glob("*.json")]
    scored = [r for r in records if "scorers" in r]
    assert scored
    by_task: dict[str, set[tuple[str, ...]]] = {}
    for r in scored:
        assert r["samples"] and all(s["prompt"] and s["prediction"] is not None for s in r["samples"])
        primary = r["scorers"][r["primary"]]
        for s in r["samples"]:  # the sample's verdict is the record's own for that item
            assert int(s["correct"]) == primary["correct"][primary["ids"].index(s["id"])]
        by_task.setdefault(r["task"], set()).add(tuple(s["id"] for s in r["samples"]))
    assert all(len(ids) == 1 for ids in by_task.values())
