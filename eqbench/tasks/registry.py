"""The training tasks: ``TASKS[name]`` builds a task's data and gives its objective and trivial baseline.

===========================  ===============================================================
task                         data (inputs -> target), objective, trivial baseline
===========================  ===============================================================
``digits-rot``               stand-in for rotated MNIST: 12 x 12 scikit-learn digits, each
                             rotated (``images -> labels``); accuracy; chance (10%)
``digits-rot-scrambled``     the same, rotated then scrambled by one pixel permutation (the
                             L-conv comparison of Dehmamy et al. 2021); accuracy; chance
``rotmnist``                 rotated MNIST ``.amat`` files (``--data FOLDER`` or
                             ``$EQBENCH_ROTMNIST``); accuracy; chance
``rotmnist-scrambled``       rotated MNIST with scrambled pixels; accuracy; chance
``nbody``                    charged 5-body systems (``positions, velocities, charges ->
                             target`` positions 1,000 steps later); MSE; no motion
``qm9-<target>``             QM9 molecules (``positions, charges, mask -> target``), one task
                             per target of :data:`eqbench.tasks.qm9.TARGETS` (``--data SOURCE``
                             or ``$EQBENCH_QM9``); MAE (meV for energies); the training mean
===========================  ===============================================================

Data options (a preset's ``data`` mapping) are checked against each task's defaults, so a typo
is an error rather than silently ignored. ``seed`` there is the *data* seed (angles, pixel
permutation, simulations, split), kept apart from the training seed so that runs with
different training seeds see the same data.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from eqbench.tasks import nbody, qm9, rotmnist
from eqbench.tasks.datafiles import DataFileError
from eqbench.tasks.datasets import TaskData, TensorDictDataset
from eqbench.tasks.images import image_variant
from eqbench.tasks.objectives import Classification, MeanAbsoluteError, MeanSquaredError, Objective
from eqbench.tasks.presets import check_option_type

DataBuilder = Callable[[Mapping[str, Any], "Path | None"], TaskData]


@dataclass(frozen=True)
class Task:
    """A training task: how to build its data, what to minimise and report, and what a trivial predictor scores.

    ``build(options, source)`` gets the data options (defaults filled in) and the user's data
    path (``None`` for built-in data); ``baseline(data)`` is the trivial predictor's headline
    test metric (``baseline_name`` says which predictor).
    """

    name: str
    description: str
    objective: Objective
    build_data: DataBuilder
    defaults: Mapping[str, Any]
    baseline: Callable[[TaskData], float]
    baseline_name: str
    source_env: str | None = None

    def validate_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """``options`` as a dict; ``ValueError`` for a key the task does not take, or a value of another type than its default's."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(f"unknown data option(s) {unknown} for task {self.name!r}; known: {sorted(self.defaults)}")
        for key, value in options.items():
            check_option_type(f"data.{key}", value, self.defaults[key])
        return options

    def build(self, options: Mapping[str, Any] | None = None, source: Path | str | None = None) -> TaskData:
        """The task's data with ``options`` over :attr:`defaults`; ``source`` (or ``$source_env``) for user data."""
        options = self.validate_options(options)
        if self.source_env is not None:
            source = source or os.environ.get(self.source_env)
            if not source:
                raise DataFileError(f"<{self.name} data>", None, f"task {self.name!r} needs its data files: pass --data PATH or set ${self.source_env}")
        elif source is not None:
            raise ValueError(f"task {self.name!r} uses built-in data and takes no data path (got {source})")
        return self.build_data({**self.defaults, **options}, Path(source) if source else None)


# ------------------------------------------------------------------ images
IMAGE_DEFAULTS = {"seed": 0, "train_size": None, "test_size": None, "max_angle_degrees": 180.0}


def _image_task_data(splits: dict[str, tuple[Tensor, Tensor]], options: Mapping[str, Any], dataset: str) -> TaskData:
    images = splits["train"][0]
    return TaskData(
        splits={
            name: TensorDictDataset({"images": x, "labels": y}).head(options[f"{name}_size"])
            for name, (x, y) in splits.items()
        },
        inputs=("images",),
        target="labels",
        meta={"dataset": dataset, "image_shape": tuple(images.shape[1:]), "num_classes": rotmnist.NUM_CLASSES},
    )


def _digits_builder(variant: str) -> DataBuilder:
    def build(options: Mapping[str, Any], source: Path | None) -> TaskData:
        max_angle = math.radians(options["max_angle_degrees"])
        splits = rotmnist.digits_variant(variant, seed=options["seed"], holdout=options["holdout"], max_angle=max_angle)
        return _image_task_data(splits, options, f"{rotmnist.STANDIN_NAME}, {variant}")

    return build


def _rotmnist_builder(variant: str) -> DataBuilder:
    def build(options: Mapping[str, Any], source: Path | None) -> TaskData:
        assert source is not None  # Task.build insists on a source for this task
        loaded = rotmnist.load_rotmnist(source, full=options["full_files"])
        if variant == "rotated_scrambled":  # the files are rotated already; scramble with the data seed
            loaded = {name: (image_variant(x, "scrambled", seed=options["seed"]), y) for name, (x, y) in loaded.items()}
        return _image_task_data(loaded, options, f"rotated MNIST ({source}), {variant}")

    return build


def _chance(data: TaskData) -> float:
    return 1.0 / data.meta["num_classes"]


# ------------------------------------------------------------------ n-body
NBODY_DEFAULTS = {"seed": 0, "train_size": 3000, "valid_size": 2000, "test_size": 2000, "input_frame": 30, "target_frame": 40}


def _nbody_data(options: Mapping[str, Any], source: Path | None) -> TaskData:
    sizes = {split: options[f"{split}_size"] for split in nbody.SPLITS if options[f"{split}_size"]}
    splits = nbody.charged_nbody(sizes, seed=options["seed"], input_frame=options["input_frame"], target_frame=options["target_frame"])
    return TaskData(
        splits={name: TensorDictDataset(tensors) for name, tensors in splits.items()},
        inputs=("positions", "velocities", "charges"),
        target="target",
        meta={"dataset": "charged n-body (EGNN setting, our simulator)", "num_particles": nbody.ChargedSystemConfig().num_particles},
    )


def _no_motion(data: TaskData) -> float:
    test = data.splits["test"].tensors
    return float(MeanSquaredError().per_example(test["positions"], test["target"])["mse"].mean())


# ------------------------------------------------------------------ QM9
QM9_DEFAULTS = {"seed": 0, "train_size": None, "valid_size": None, "test_size": None, "uncharacterized": None}


def _qm9_builder(target: str) -> DataBuilder:
    def build(options: Mapping[str, Any], source: Path | None) -> TaskData:
        assert source is not None  # Task.build insists on a source for this task
        arrays = qm9.load_qm9(source, options["uncharacterized"])
        rows = qm9.split_indices(len(arrays["index"]), options["seed"])
        splits = {
            name: TensorDictDataset(qm9.molecule_tensors(arrays, target, indices)).head(options[f"{name}_size"])
            for name, indices in rows.items()
        }
        train_target = splits["train"].tensors["target"]
        return TaskData(
            splits=splits,
            inputs=("positions", "charges", "mask"),
            target="target",
            meta={
                "dataset": f"QM9 ({Path(str(source)).name})",  # the file name only: result rows travel between machines
                "max_atoms": int(arrays["atomic_numbers"].shape[1]),
                "species": sorted(qm9.ATOMIC_NUMBERS.values()),
                "target_mean": float(train_target.mean()),
                "target_std": float(train_target.std()),
                "unit": qm9.TARGETS[target].unit,
            },
        )

    return build


def _training_mean_mae(objective: MeanAbsoluteError) -> Callable[[TaskData], float]:
    def baseline(data: TaskData) -> float:
        target = data.splits["test"].tensors["target"]
        prediction = torch.full_like(target, data.meta["target_mean"])
        return float(objective.per_example(prediction, target)[objective.headline].mean())

    return baseline


def _qm9_task(target: str) -> Task:
    spec = qm9.TARGETS[target]
    objective = MeanAbsoluteError(spec.report_unit, spec.report_factor)
    return Task(
        name=f"qm9-{target}",
        description=f"QM9 {target} ({spec.unit}; MAE in {spec.report_unit}{', atom references subtracted' if spec.atom_reference else ''})",
        objective=objective,
        build_data=_qm9_builder(target),
        defaults=QM9_DEFAULTS,
        baseline=_training_mean_mae(objective),
        baseline_name="training-set mean",
        source_env="EQBENCH_QM9",
    )


def _image_task(name: str, description: str, builder: DataBuilder, defaults: Mapping[str, Any], source_env: str | None = None) -> Task:
    return Task(name, description, Classification(), builder, defaults, _chance, "chance", source_env)


DIGITS_DEFAULTS = {**IMAGE_DEFAULTS, "holdout": 500}
#: ``full_files``: the .amat files must hold the published 12,000 / 50,000 rows (False accepts subsets).
ROTMNIST_DEFAULTS = {**IMAGE_DEFAULTS, "full_files": True}

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        _image_task("digits-rot", f"{rotmnist.STANDIN_NAME}: 8x8 digits padded to 12x12, rotated by seeded angles", _digits_builder("rotated"), DIGITS_DEFAULTS),
        _image_task("digits-rot-scrambled", f"{rotmnist.STANDIN_NAME}, rotated then pixel-scrambled (L-conv comparison)", _digits_builder("rotated_scrambled"), DIGITS_DEFAULTS),
        _image_task("rotmnist", "rotated MNIST from the published .amat files", _rotmnist_builder("rotated"), ROTMNIST_DEFAULTS, "EQBENCH_ROTMNIST"),
        _image_task("rotmnist-scrambled", "rotated MNIST with one fixed pixel permutation", _rotmnist_builder("rotated_scrambled"), ROTMNIST_DEFAULTS, "EQBENCH_ROTMNIST"),
        Task("nbody", "charged 5-body: positions at frame 40 from frame 30 (EGNN setting)", MeanSquaredError(), _nbody_data, NBODY_DEFAULTS, _no_motion, "no motion"),
        *(_qm9_task(target) for target in qm9.TARGETS),
    )
}


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name is an error listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None
