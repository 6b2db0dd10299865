"""Campaigns on Ray: a local Ray started here (2 CPUs) gives the serial verdicts, ships plugin files, survives a killed worker."""
from __future__ import annotations

import json

import pytest

from eqbench.cli.main import main
from test_campaign import PLUGIN_MODELS, settings, verdicts, write_plugin

ray = pytest.importorskip("ray", reason="the ray executor needs the optional extra eqbench[ray]")
pytestmark = pytest.mark.slow

#: Quick default-suite models covering equivariance and stochastic checks, exact/approximate/violated verdicts and finite groups.
SUBSET = ("deepsets", "chiral-o3", "distance-mlp", "lconv-shift", "lieconv-so2", "lieconv-so2-image-mc", "lieconv-t2-rotations", "truncated-neighbourhood")


@pytest.fixture(scope="module")
def local_ray():
    import logging

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_serial_verdicts(local_ray, fresh_registry, tmp_path):
    records = {}
    for executor in ("serial", "ray"):
        path = tmp_path / f"{executor}.json"
        options = ["--executor", executor] + (["--workers", "2"] if executor == "ray" else [])
        assert main(["check", *SUBSET, "--seeds", "0-1", *options, "--no-cache", "--json", str(path)]) == 0
        records[executor] = json.loads(path.read_text())["records"]
    assert all(not r["cached"] for r in records["ray"])
    same = ("model", "seed", "verdict")  # the search's draws may differ by process (eqbench.check.search: hypothesis mixes in local constants)
    assert [[r[f] for f in same] for r in records["ray"]] == [[r[f] for f in same] for r in records["serial"]]
    assert {r["verdict"] for r in records["ray"]} == {"exact", "approximate", "violated"}


def test_ray_ships_plugin_files_and_a_killed_worker_yields_an_error_record(local_ray, fresh_registry, tmp_path):
    from eqbench.campaign.campaigns import run_checks

    marker = tmp_path / "marker"
    marker.touch()
    path = write_plugin(tmp_path, marker)
    fresh_registry.load_plugin(path)
    entries = [fresh_registry.get_entry(m) for m in ("campaign-crash", *PLUGIN_MODELS)]
    outcomes = run_checks(entries, [0], settings(tmp_path, path, executor="ray"))
    assert outcomes[0].failed and outcomes[0].record["verdict"] == "error" and "died" in outcomes[0].record["message"]
    assert verdicts(outcomes[1:]) == [("campaign-norms", 0, "exact"), ("campaign-coords", 0, "violated")]
    assert [o.cached for o in run_checks(entries[1:], [0], settings(tmp_path, path, executor="ray"))] == [True, True]
