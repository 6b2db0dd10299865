"""Campaigns: seeds, the cache, code fingerprints, the serial and process executors, resuming, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from eqbench.campaign.cache import CorruptCacheWarning, ResultCache
from eqbench.campaign.campaigns import CampaignSettings, run_checks
from eqbench.campaign.spec import SpecError, parse_seeds
from eqbench.check.result import RECORD_FIELDS
from eqbench.cli.main import main
from eqbench.reports.records import load_check_records

TEMPLATE = Path(__file__).with_name("campaign_plugin_template.py")
PLUGIN_MODELS = ("campaign-norms", "campaign-coords")


def write_plugin(folder: Path, marker: Path, replace: tuple[str, str] | None = None) -> Path:
    """The test plugin (campaign_plugin_template.py) in ``folder`` with its marker path; ``replace`` edits its code."""
    text = TEMPLATE.read_text().replace("__MARKER__", str(marker))
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    path = folder / "campaign_models.py"
    path.write_text(text)
    return path


@pytest.fixture
def plugin(fresh_registry, tmp_path):
    """(registry, plugin file, marker file) with the plugin loaded."""
    path = write_plugin(tmp_path, tmp_path / "marker")
    fresh_registry.load_plugin(path)
    return fresh_registry, path, tmp_path / "marker"


def settings(tmp_path: Path, plugin_file: Path, **changes) -> CampaignSettings:
    return CampaignSettings(plugins=(str(plugin_file),), cache_dir=tmp_path / "cache", progress=False, **changes)


def verdicts(outcomes) -> list[tuple[str, int, str]]:
    return [(o.record["model"], o.record["seed"], o.record["verdict"]) for o in outcomes]


# ------------------------------------------------------------------ seeds and spec
def test_parse_seeds_reads_ranges_lists_and_single_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("7, 0,3-4") == [0, 3, 4, 7]
    assert parse_seeds(5) == [5]
    assert parse_seeds([3, 1, 3]) == [1, 3]
    for bad in ("4-2", "a-b", "", "-1", True, [], 1.5):
        with pytest.raises(SpecError, match="seeds"):
            parse_seeds(bad)


# ------------------------------------------------------------------ cache
def test_cache_round_trip_and_corrupt_entries_are_recomputed_with_a_warning(tmp_path):
    cache = ResultCache(tmp_path)
    key = "ab" + "0" * 62
    assert cache.get(key) is None
    path = cache.put(key, "check", {"record": {"verdict": "exact"}})
    assert path.parent.name == "ab" and cache.get(key) == {"record": {"verdict": "exact"}}
    assert not list(tmp_path.rglob("*.tmp"))  # written through a temporary file, then replaced
    for corrupt in ('{"key": "ab', "[1, 2]", json.dumps({"key": "cd" + "0" * 62, "kind": "check", "payload": {}})):
        path.write_text(corrupt)
        with pytest.warns(CorruptCacheWarning, match="corrupt"):
            assert cache.get(key) is None


def test_a_corrupt_entry_is_recomputed_and_rewritten(plugin, tmp_path):
    registry, path, _ = plugin
    entries = [registry.get_entry(m) for m in PLUGIN_MODELS]
    first = run_checks(entries, [0], settings(tmp_path, path))
    broken = ResultCache(tmp_path / "cache").path(first[1].record["key"])
    broken.write_text(broken.read_text()[:40])  # a torn write from some other tool
    with pytest.warns(CorruptCacheWarning, match=str(broken.name)):
        second = run_checks(entries, [0], settings(tmp_path, path))
    assert [o.cached for o in second] == [True, False] and verdicts(second) == verdicts(first)
    assert [o.cached for o in run_checks(entries, [0], settings(tmp_path, path))] == [True, True]


def test_record_stream_rewrites_whole_files_as_records_arrive(tmp_path):
    import pandas as pd

    from eqbench.campaign.output import RecordStream

    stream = RecordStream(tmp_path / "r.json", tmp_path / "r.csv", interval=0)
    stream.add({"model": "b", "seed": 1, "max_rel_error": float("nan")})
    assert json.loads((tmp_path / "r.json").read_text())["records"] == [{"model": "b", "seed": 1, "max_rel_error": None}]
    stream.add({"model": "a", "seed": 0, "message": "x"})
    assert list(pd.read_csv(tmp_path / "r.csv").columns) == ["model", "seed", "max_rel_error", "message"]
    stream.close(order=lambda record: record["model"])
    assert [r["model"] for r in json.loads((tmp_path / "r.json").read_text())["records"]] == ["a", "b"]


# ------------------------------------------------------------------ executors
def test_serial_executor_runs_lazily_and_keeps_exceptions_in_futures():
    from eqbench.campaign.executor import make_executor

    calls = []
    with make_executor("serial") as executor:
        futures = [executor.submit(lambda x: calls.append(x) or 1 / x, x) for x in (1, 0, 2)]
        assert calls == []  # nothing runs before as_completed asks
        done = list(executor.as_completed(futures))
    assert done == futures and calls == [1, 0, 2]
    assert [f.result() for f in (futures[0], futures[2])] == [1.0, 0.5]
    assert isinstance(futures[1].exception(), ZeroDivisionError)
    with pytest.raises(ValueError, match="unknown executor 'threads'"):
        make_executor("threads")


# ------------------------------------------------------------------ fingerprints
def test_code_digest_follows_each_models_own_code(fresh_registry, tmp_path):
    """Editing one model's class changes its key alone, although both models live in one file; reloading unchanged code changes nothing."""
    from eqbench.campaign.jobs import plan_checks

    def keys(replace=None):
        fresh_registry.load_plugin(write_plugin(tmp_path, tmp_path / "marker", replace))
        return {job.model: job.key for job in plan_checks([fresh_registry.get_entry(m) for m in PLUGIN_MODELS], [0], None)}

    before = keys()
    assert keys() == before
    after = keys(("x[..., 0].sum", "x[..., 1].sum"))
    assert after["campaign-norms"] == before["campaign-norms"]
    assert after["campaign-coords"] != before["campaign-coords"]
    examples = plan_checks([fresh_registry.get_entry("campaign-norms")], [0, 1], 7)
    assert len({job.key for job in examples} | {before["campaign-norms"]}) == 3  # the seed and the search size are in the key


# ------------------------------------------------------------------ serial: cache, resume, code changes
def test_second_run_is_all_cached_and_a_code_change_reruns_only_that_model(plugin, tmp_path, capsys):
    registry, path, _ = plugin
    out = tmp_path / "checks.json"
    args = ["check", *PLUGIN_MODELS, "--plugin", str(path), "--seeds", "0-2", "--cache", str(tmp_path / "cache"), "--json", str(out)]
    assert main(args) == 0
    assert "6 results: 6 computed, 0 cached" in capsys.readouterr().err
    first = json.loads(out.read_text())["records"]
    assert [r["cached"] for r in first] == [False] * 6 and all(set(RECORD_FIELDS) <= set(r) for r in first)
    assert main(args) == 0
    assert "6 results: 0 computed, 6 cached" in capsys.readouterr().err
    second = json.loads(out.read_text())["records"]
    assert all(r["cached"] for r in second)
    assert [(r["verdict"], r["max_rel_error"]) for r in second] == [(r["verdict"], r["max_rel_error"]) for r in first]
    write_plugin(tmp_path, tmp_path / "marker", ("x[..., 0].sum", "x[..., 2].sum"))
    assert main(args) == 0
    assert "6 results: 3 computed, 3 cached" in capsys.readouterr().err
    third = {(r["model"], r["seed"]): r["cached"] for r in json.loads(out.read_text())["records"]}
    assert third == {**{("campaign-norms", s): True for s in range(3)}, **{("campaign-coords", s): False for s in range(3)}}
    assert len(load_check_records([out])) == 6  # reports read campaign output as it is
    assert main([*args, "--no-cache"]) == 0
    assert "6 results: 6 computed, 0 cached" in capsys.readouterr().err


def test_check_campaign_json_is_written_by_its_record_stream_alone(plugin, tmp_path, monkeypatch):
    """``eqbench check --seeds ... --json FILE``: the stream writes FILE as checks finish and once more, ordered, at the
    end; nothing rewrites it after the campaign returns, and a re-run holds each record once."""
    import os

    import eqbench.campaign.campaigns as campaigns

    _, path, _ = plugin
    out = tmp_path / "checks.json"
    writes: list[tuple[bool, str]] = []  # (campaign finished?, content) of every replacement of FILE
    finished = [False]
    replace, run = os.replace, campaigns.run_checks

    def recording_replace(source, target):
        if Path(target) == out:
            writes.append((finished[0], Path(source).read_text()))
        replace(source, target)

    def recording_run(*args, **kwargs):
        outcomes = run(*args, **kwargs)
        finished[0] = True
        return outcomes

    monkeypatch.setattr(os, "replace", recording_replace)
    monkeypatch.setattr(campaigns, "run_checks", recording_run)
    args = ["check", *PLUGIN_MODELS, "--plugin", str(path), "--seeds", "0-1", "--cache", str(tmp_path / "cache"), "--json", str(out)]
    for _ in range(2):  # computed, then all cached
        finished[0] = False
        writes.clear()
        assert main(args) == 0
        assert writes and not any(after for after, _ in writes)
        assert out.read_text() == writes[-1][1]
        records = json.loads(out.read_text())["records"]
        assert [(r["model"], r["seed"]) for r in records] == [(m, s) for m in PLUGIN_MODELS for s in (0, 1)]


def test_interrupted_campaign_keeps_finished_results_and_resumes(plugin, tmp_path):
    registry, path, marker = plugin
    marker.touch()
    entries = [registry.get_entry(m) for m in (*PLUGIN_MODELS, "campaign-interrupt")]
    out = tmp_path / "checks.json"
    with pytest.raises(KeyboardInterrupt):
        run_checks(entries, [0, 1], settings(tmp_path, path), json_path=out)
    streamed = json.loads(out.read_text())["records"]
    assert sorted((r["model"], r["seed"]) for r in streamed) == sorted((m, s) for m in PLUGIN_MODELS for s in (0, 1))
    marker.unlink()
    outcomes = run_checks(entries, [0, 1], settings(tmp_path, path), json_path=out)
    assert [o.cached for o in outcomes] == [True] * 4 + [False] * 2
    assert [o.record["verdict"] for o in outcomes] == ["exact", "exact", "violated", "violated", "exact", "exact"]


# ------------------------------------------------------------------ process pool
@pytest.mark.slow
def test_process_pool_survives_a_killed_worker_and_the_rerun_completes(plugin, tmp_path):
    """A worker SIGKILLed mid-campaign: its task gets an error record, the other tasks (one of them running beside it)
    finish and are cached, and a re-run completes the killed one."""
    registry, path, marker = plugin
    marker.touch()
    entries = [registry.get_entry(m) for m in ("campaign-crash", *PLUGIN_MODELS)]
    out = tmp_path / "checks.json"
    with settings(tmp_path, path, executor="process", workers=2).open_executor() as executor:
        outcomes = run_checks(entries, [0], settings(tmp_path, path), json_path=out, executor=executor)
        threads = executor.submit(torch.get_num_threads)
        assert next(executor.as_completed([threads])).result() == 1  # one intra-op thread per worker
    crashed = outcomes[0]
    assert crashed.failed and crashed.record["verdict"] == "error" and "died" in crashed.record["message"]
    assert verdicts(outcomes[1:]) == [("campaign-norms", 0, "exact"), ("campaign-coords", 0, "violated")]
    assert len(load_check_records([out])) == 3
    marker.unlink()
    rerun = run_checks(entries, [0], settings(tmp_path, path), json_path=out)
    assert [o.cached for o in rerun] == [False, True, True]
    assert verdicts(rerun) == [("campaign-crash", 0, "exact"), *verdicts(outcomes[1:])]


# ------------------------------------------------------------------ errors
def test_campaign_option_errors_are_one_line_usage_errors(fresh_registry, tmp_path, capsys):
    assert main(["check", "deepsets", "--seeds", "3-1"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["check", "deepsets", "--executor", "process", "--address", "127.0.0.1:6379"]) == 2
    assert "needs --executor ray" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('[[checks]]\nmodels = ["deepsets"]\nseed = 3\n')
    assert main(["campaign", str(bad)]) == 2
    error = capsys.readouterr().err
    assert "unknown key(s) ['seed']" in error and error.count("\n") == 1


# ------------------------------------------------------------------ campaign files
@pytest.mark.slow
def test_campaign_file_runs_checks_and_training_cached_and_reports_read_its_output(fresh_registry, tmp_path, capsys):
    from eqbench.reports import build_report

    write_plugin(tmp_path, tmp_path / "marker")
    spec = tmp_path / "lab.toml"
    spec.write_text(
        'output = "out"\nplugins = ["campaign_models.py"]\n[cache]\ndir = "cache"\n'
        '[[checks]]\nmodels = ["campaign-norms", "campaign-coords"]\nseeds = "0-1"\n'
        '[[training]]\ntasks = ["digits-rot"]\nmodels = ["mlp"]\nseeds = [0, 1]\n'
        'options = ["epochs=1", "data.train_size=64", "data.test_size=32", "data.holdout=32"]\n'
    )
    assert main(["campaign", str(spec)]) == 0
    printed = capsys.readouterr().out
    assert "checks: 4 results: 4 computed, 0 cached" in printed and "training: 2 results: 2 computed, 0 cached" in printed
    out = tmp_path / "out"
    rows = json.loads((out / "training.json").read_text())["records"]
    assert [(r["model"], r["seed"], r["epochs"], r["cached"]) for r in rows] == [("mlp", 0, 1, False), ("mlp", 1, 1, False)]
    # the run folder names the preset's changes (-epochs1-o<hash>, eqbench.tasks.presets.Preset.run_suffix)
    assert len(list((out / "training" / "digits-rot").glob("mlp-small-seed1-epochs1-o*/result.json"))) == 1
    assert main(["campaign", str(spec)]) == 0
    printed = capsys.readouterr().out
    assert "checks: 4 results: 0 computed, 4 cached" in printed and "training: 2 results: 0 computed, 2 cached" in printed
    assert [r["test_accuracy"] for r in json.loads((out / "training.json").read_text())["records"]] == [r["test_accuracy"] for r in rows]
    written = build_report(tmp_path / "reports", checks=[out / "checks.json"], training=out / "training")
    assert {p.name for p in written} >= {"index.html", "report.md", "checks.csv", "training.csv"}
