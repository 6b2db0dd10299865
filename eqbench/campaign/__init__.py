"""Campaigns: many checks and training runs fanned out over an executor, cached by content, resumable.

* :mod:`~eqbench.campaign.executor`: one ``concurrent.futures``-style interface over ``serial``,
  ``process`` (a local pool) and ``ray`` backends; a dead worker fails only its own task;
* :mod:`~eqbench.campaign.fingerprint` and :mod:`~eqbench.campaign.cache`: content-addressed keys
  (model code and weights, group, actions, inputs, checker settings, seed, versions) and the
  atomic one-file-per-result cache;
* :mod:`~eqbench.campaign.jobs`: check and training jobs, their keys and records;
* :mod:`~eqbench.campaign.runner`: cache look-ups, submission, progress bar, streamed outcomes;
* :mod:`~eqbench.campaign.campaigns`: check and training campaigns end to end;
* :mod:`~eqbench.campaign.spec`: campaign files (TOML) and seed ranges.

The command line: ``eqbench check --seeds 0-19 --executor ...`` and ``eqbench campaign FILE.toml``.
"""
from eqbench.campaign.cache import ResultCache, default_cache_dir
from eqbench.campaign.campaigns import CampaignSettings, run_checks, run_training_jobs
from eqbench.campaign.executor import EXECUTORS, Executor, WorkerDied, WorkerSetup, make_executor

__all__ = [
    "EXECUTORS",
    "CampaignSettings",
    "Executor",
    "ResultCache",
    "WorkerDied",
    "WorkerSetup",
    "default_cache_dir",
    "make_executor",
    "run_checks",
    "run_training_jobs",
]
