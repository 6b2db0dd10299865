"""Hyperparameter presets per (task, model): ``paper`` (published settings), ``medium`` (at most 10 minutes
on one CPU core, closer to the paper) and ``small`` (minutes on 2 CPU cores).

``paper`` presets carry the settings of the papers' code:

* LieConv on rotated MNIST (Finzi et al. 2020, README and ``examples/train_img.py``): Adam,
  lr 3e-3, batch 25, 500 epochs, cosine schedule; ``ImgLieResnet`` with SO(2) (alpha 0.2),
  k 128, nbhd 25, fill 0.1, total_ds 0.1, 6 layers. LieConv + GIGP (Bujel et al. 2023) trains
  with the same settings.
* LieConv on QM9: Adam, lr 3e-3, batch 75, 500 epochs, 1% linear warm-up then cosine
  (``examples/train_molec.py``); ``MolecLieResNet`` with T(3), k 1536, nbhd 100, fill 1, 6 layers.
* n-body (``nbody_small``, 3,000 training systems): FA-GNN (Puny et al. 2022, ``nbody/run.sh``)
  Adam lr 1e-3, batch 100, weight decay 1e-12, 60 hidden, 4 layers, 10,000 epochs; EGNN
  (Satorras et al. 2021 README) lr 5e-4, 64 hidden; GNN lr 1e-3; both batch 100, weight decay
  1e-12, 4 layers, 10,000 epochs.
* L-conv vs CNN vs fully connected on rotated-and-scrambled images (Dehmamy et al. 2021,
  ``paper-code/D-image-experiments/run_test-v2.py``): rotations uniform in +-90 degrees, 30
  epochs, batch 32 and lr 1e-3 (Keras' defaults; we use Adam, they used RMSprop); L-conv with 32
  filters, 9 generators of rank 8; CNN with 32 3x3 filters; the FC baseline 72 hidden units.

Models without a published setting for a task (e.g. a CNN on rotated digits) get the settings
of the paper that introduced the comparison. ``small`` presets shrink widths, data and epochs.
``medium`` presets sit between, each budgeted to at most 10 minutes per run on one core of a
2-core CPU machine (the time is the reason for every cut):

* n-body: the EGNN paper's 3,000 training and 2,000 test systems (500 validation systems instead
  of 2,000: nothing is selected on them, and evaluating them every epoch cost a third of FA-GNN's
  time) and the papers' widths, depths and learning rates, for 50 epochs (about 5 s an epoch for
  FA-GNN, 1 s for EGNN) instead of 10,000 (``small``: 30 epochs, 32-33 hidden, 3 layers, lr 1e-3,
  500 validation / 1,000 test systems);
* digits (the scikit-learn stand-in): the L-conv paper's models and schedule (the ``paper``
  preset, which already takes seconds on these 1,297 training images);
* LieConv on images: the ``small`` network with 4 instead of 3 layers, batch 25 (the paper's);
* LieConv on QM9: the ``small`` network on 10,000 instead of 5,000 training molecules.

Presets are plain values: :func:`with_overrides` applies ``--epochs``, ``--option`` and friends.
"""
from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class Preset:
    """Optimiser, schedule, data and model settings of one run.

    ``batch_size`` is the global batch (split over processes under torchrun); ``warmup`` is the
    fraction of steps with a linear warm-up before the cosine decay; ``data`` goes to
    :meth:`eqbench.tasks.registry.Task.build` and ``model`` to the model builder.
    ``overrides`` lists the ``KEY=VALUE`` changes :func:`with_overrides` made to the named
    preset (``data.KEY`` / ``model.KEY`` for nested entries), in key order; :meth:`run_suffix`
    turns them into the part of the run folder's name that tells such runs apart.
    """

    name: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    warmup: float = 0.0
    amp: bool = True
    eval_batch_size: int = 256
    data: Mapping[str, Any] = field(default_factory=dict)
    model: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError(f"preset {self.name!r}: epochs and batch sizes must be positive, got {self.epochs}, {self.batch_size}, {self.eval_batch_size}")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.warmup < 1:
            raise ValueError(f"preset {self.name!r}: need lr > 0, weight_decay >= 0 and 0 <= warmup < 1")

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly form (nested mappings as dicts; ``overrides`` left out: the values already show them)."""
        return {
            f.name: dict(getattr(self, f.name)) if f.name in ("data", "model") else getattr(self, f.name)
            for f in fields(self)
            if f.name != "overrides"
        }

    def run_suffix(self) -> str:
        """``""`` for the named preset as it is; else ``-epochsN`` when the epochs changed and ``-o<hash>``
        (8 hex digits of SHA-1 over :attr:`overrides`) when anything else did, so that a 1-epoch smoke
        run and the full run, or runs with different ``--option`` values, get different folders."""
        epochs = [o for o in self.overrides if o.startswith("epochs=")]
        others = [o for o in self.overrides if not o.startswith("epochs=")]
        suffix = f"-epochs{self.epochs}" if epochs else ""
        if others:
            suffix += "-o" + hashlib.sha1("\n".join(others).encode()).hexdigest()[:8]
        return suffix


def with_overrides(preset: Preset, options: Iterable[str] = (), **values: Any) -> Preset:
    """``preset`` with top-level ``values`` (``None`` values ignored; ``data`` and ``model`` mappings are merged in) and ``options`` ``"data.KEY=VALUE"`` / ``"model.KEY=VALUE"`` / ``"KEY=VALUE"`` applied.

    Values are Python literals (``3``, ``0.1``, ``True``, ``'SO2'``, ``(64, 64)``); anything else is taken as a string.
    A value must have the type of the entry it replaces (:func:`check_option_type`): ``data.full_files=maybe``
    is refused where the preset holds ``True``. The changes are recorded in ``overrides``.
    """
    changes: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
    data = {**preset.data, **changes.pop("data", {})}
    model = {**preset.model, **changes.pop("model", {})}
    top = {f.name for f in fields(Preset)} - {"name", "data", "model", "source", "overrides"}
    for option in options:
        key, sep, text = option.partition("=")
        if not sep or not key:
            raise ValueError(f"option {option!r} is not KEY=VALUE (e.g. data.train_size=500, model.hidden=32, epochs=3)")
        value = _literal(text)
        section, _, name = key.rpartition(".")
        if section == "data":
            check_option_type(key, value, preset.data.get(name))
            data[name] = value
        elif section == "model":
            check_option_type(key, value, preset.model.get(name))
            model[name] = value
        elif not section and name in top:
            check_option_type(key, value, getattr(preset, name))
            changes[name] = value
        else:
            raise ValueError(f"option {key!r}: expected data.KEY, model.KEY or one of {sorted(top)}")
    updated = replace(preset, data=data, model=model, **changes)
    return replace(updated, overrides=_overrides(preset, updated))


def check_option_type(key: str, value: Any, current: Any) -> None:
    """Raise ``ValueError`` when ``value`` cannot replace the preset's ``current`` value (``None``: anything goes).

    A flag takes only ``True`` or ``False``; a number takes a number or a tuple of numbers (a
    width per layer), not a flag or a word; a string takes a string. A word where a flag or a
    number belongs (``data.full_files=maybe``, ``model.hidden=big``) is a typo, not a setting.
    """
    if current is None:
        return
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"option {key}={value!r}: expected True or False (the preset has {current!r})")
    elif isinstance(current, (int, float)):
        if isinstance(value, (bool, str)) or not isinstance(value, (int, float, tuple, list)):
            raise ValueError(f"option {key}={value!r}: expected a number (the preset has {current!r})")
    elif isinstance(current, str) and not isinstance(value, str):
        raise ValueError(f"option {key}={value!r}: expected a string (the preset has {current!r})")


def _overrides(original: Preset, updated: Preset) -> tuple[str, ...]:
    """``KEY=VALUE`` for every entry of ``updated`` that differs from ``original`` (sorted by key)."""
    changed = []
    for f in fields(Preset):
        if f.name in ("data", "model"):
            before, after = getattr(original, f.name), getattr(updated, f.name)
            changed += [f"{f.name}.{k}={after[k]!r}" for k in sorted(after) if k not in before or before[k] != after[k]]
        elif f.name not in ("name", "source", "overrides") and getattr(original, f.name) != getattr(updated, f.name):
            changed.append(f"{f.name}={getattr(updated, f.name)!r}")
    return tuple(sorted(changed))


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# ------------------------------------------------------------------ the tables
LIECONV_IMAGE_PAPER = {"alpha": 0.2, "k": 128, "nbhd": 25, "fill": 0.1, "total_ds": 0.1, "num_layers": 6}
LIECONV_IMAGE_SMALL = {"alpha": 0.2, "k": 48, "nbhd": 16, "fill": 0.2, "total_ds": 0.5, "num_layers": 3}
LIECONV_IMAGE_MEDIUM = {**LIECONV_IMAGE_SMALL, "num_layers": 4}
LIECONV_IMAGE_MODELS = ("lieconv-so2", "lieconv-so2-gigp", "lieconv-t2", "lieconv-se2")
#: The reference's rotMNIST crop (28 x 28 images -> 648 pixels); the padded 12 x 12 digits keep every pixel.
MNIST_CROP = {"crop_radius": 15.0}
LIECONV_MOLECULE_PAPER = {"k": 1536, "nbhd": 100, "fill": 1.0, "num_layers": 6}
LIECONV_MOLECULE_SMALL = {"k": 64, "nbhd": 16, "fill": 1.0, "num_layers": 2}
LIECONV_MOLECULE_MODELS = ("lieconv-t3", "lieconv-t3-gigp", "lieconv-se3")
LCONV_SOURCE = "Dehmamy et al. 2021, run_test-v2.py (Keras defaults; Adam here)"
LIECONV_IMAGE_SOURCE = "Finzi et al. 2020 README / train_img.py (rotMNIST, SO2)"
IMAGE_MODELS_PAPER = {
    "lconv": {"hidden_channels": 32, "num_layers": 1, "num_generators": 9, "rank": 8},
    "cnn": {"channels": 32, "num_layers": 1, "kernel_size": 3},
    "mlp": {"hidden": (72,)},
}
IMAGE_MODELS_SMALL = {
    "lconv": {"hidden_channels": 16, "num_layers": 1, "num_generators": 9, "rank": 8},
    "cnn": {"channels": 16, "num_layers": 1, "kernel_size": 3},
    "mlp": {"hidden": (72,)},
}
#: ``small`` n-body widths: 32 hidden, 33 for FA-GNN (its hidden states are read as 3-vectors, so a multiple of 3).
NBODY_SMALL = {"fa-gnn": {"hidden": 33, "layers": 3}, "egnn": {"hidden": 32, "layers": 3}, "gnn": {"hidden": 32, "layers": 3}}
#: ``medium`` n-body data: the EGNN paper's training and test sets, a smaller validation set.
NBODY_MEDIUM_DATA = {"train_size": 3000, "valid_size": 500, "test_size": 2000}
NBODY_PAPER = {
    "fa-gnn": ({"hidden": 60, "layers": 4}, 1e-3, "Puny et al. 2022, nbody/run.sh"),
    "egnn": ({"hidden": 64, "layers": 4}, 5e-4, "Satorras et al. 2021 README"),
    "gnn": ({"hidden": 64, "layers": 4}, 1e-3, "Satorras et al. 2021 README"),
}


def _image_presets(tasks: tuple[str, ...], crop: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Preset]]:
    table: dict[tuple[str, str], dict[str, Preset]] = {}
    small_data = {"seed": 0}
    for task in tasks:
        for model, settings in IMAGE_MODELS_PAPER.items():
            paper_data = {"max_angle_degrees": 90.0}
            table[(task, model)] = {
                "paper": Preset("paper", 30, 32, 1e-3, data=paper_data, model=settings, source=LCONV_SOURCE),
                "medium": Preset("medium", 30, 32, 1e-3, data=paper_data, model=settings, source=f"eqbench medium = {LCONV_SOURCE}"),
                "small": Preset("small", 15, 32, 3e-3, data=small_data, model=IMAGE_MODELS_SMALL[model], source="eqbench small"),
            }
        for model in LIECONV_IMAGE_MODELS:
            table[(task, model)] = {
                "paper": Preset("paper", 500, 25, 3e-3, model={**LIECONV_IMAGE_PAPER, **crop}, source=LIECONV_IMAGE_SOURCE),
                "medium": Preset("medium", 10, 25, 3e-3, data=small_data, model={**LIECONV_IMAGE_MEDIUM, **crop}, source="eqbench medium"),
                "small": Preset("small", 10, 32, 3e-3, data=small_data, model={**LIECONV_IMAGE_SMALL, **crop}, source="eqbench small"),
            }
    return table


def _nbody_presets() -> dict[tuple[str, str], dict[str, Preset]]:
    table = {}
    small_data = {"train_size": 3000, "valid_size": 500, "test_size": 1000}
    for model, (settings, lr, source) in NBODY_PAPER.items():
        table[("nbody", model)] = {
            "paper": Preset("paper", 10_000, 100, lr, weight_decay=1e-12, model=settings, source=source),
            "medium": Preset("medium", 50, 100, lr, weight_decay=1e-12, data=NBODY_MEDIUM_DATA, model=settings, source=f"eqbench medium: {source}, 50 epochs"),
            "small": Preset("small", 30, 100, 1e-3, weight_decay=1e-12, data=small_data, model=NBODY_SMALL[model], source="eqbench small"),
        }
    return table


def _qm9_presets(tasks: Iterable[str]) -> dict[tuple[str, str], dict[str, Preset]]:
    table = {}
    small_data = {"train_size": 5000, "valid_size": 1000, "test_size": 2000}
    for task in tasks:
        for model in LIECONV_MOLECULE_MODELS:
            table[(task, model)] = {
                "paper": Preset("paper", 500, 75, 3e-3, warmup=0.01, model=LIECONV_MOLECULE_PAPER, source="Finzi et al. 2020 README / train_molec.py"),
                "medium": Preset("medium", 15, 50, 3e-3, warmup=0.01, data={**small_data, "train_size": 10_000}, model=LIECONV_MOLECULE_SMALL, source="eqbench medium"),
                "small": Preset("small", 15, 50, 3e-3, warmup=0.01, data=small_data, model=LIECONV_MOLECULE_SMALL, source="eqbench small"),
            }
    return table


def _all_presets() -> dict[tuple[str, str], dict[str, Preset]]:
    from eqbench.tasks.qm9 import TARGETS

    return {
        **_image_presets(("digits-rot", "digits-rot-scrambled"), crop={}),
        **_image_presets(("rotmnist", "rotmnist-scrambled"), crop=MNIST_CROP),
        **_nbody_presets(),
        **_qm9_presets(f"qm9-{target}" for target in TARGETS),
    }


PRESETS: dict[tuple[str, str], dict[str, Preset]] = _all_presets()
#: The model whose presets (minus its model options) serve any other model trained on a task.
TASK_REFERENCE_MODEL = {
    **{task: "cnn" for task in ("digits-rot", "digits-rot-scrambled", "rotmnist", "rotmnist-scrambled")},
    "nbody": "egnn",
    **{task: "lieconv-t3" for task, _ in PRESETS if task.startswith("qm9-")},
}


def get_preset(task: str, model: str, name: str) -> Preset:
    """The preset ``name`` of ``(task, model)``, else the task's reference model's preset with empty model options.

    So a user's model registered for a task trains with that task's settings unless it brings
    its own (through ``--option``). Unknown tasks or preset names are errors listing what exists.
    """
    presets = PRESETS.get((task, model))
    if presets is None:
        if task not in TASK_REFERENCE_MODEL:
            raise KeyError(f"no presets for task {task!r}; tasks with presets: {sorted(TASK_REFERENCE_MODEL)}")
        presets = {key: replace(p, model={}) for key, p in PRESETS[(task, TASK_REFERENCE_MODEL[task])].items()}
    if name not in presets:
        raise KeyError(f"unknown preset {name!r} for {model} on {task}; known: {sorted(presets)}")
    return presets[name]
