"""The ``medium`` presets: one per (task, model), between ``small`` and ``paper``, data options the tasks accept."""
from __future__ import annotations

from eqbench.tasks.presets import NBODY_PAPER, PRESETS, get_preset
from eqbench.tasks.registry import get_task


def test_every_task_and_model_has_a_medium_preset_with_valid_data_options():
    for (task, model), presets in PRESETS.items():
        assert {"small", "medium", "paper"} <= set(presets), (task, model)
        medium, small, paper = presets["medium"], presets["small"], presets["paper"]
        assert set(medium.data) <= set(get_task(task).defaults), (task, model)
        assert small.epochs <= medium.epochs <= paper.epochs, (task, model)


def test_nbody_medium_is_the_egnn_papers_training_and_test_data_with_the_papers_models_and_a_longer_schedule():
    defaults = get_task("nbody").defaults
    for model, (settings, lr, _) in NBODY_PAPER.items():
        medium, small = get_preset("nbody", model, "medium"), get_preset("nbody", model, "small")
        data = {**defaults, **medium.data}
        assert (data["train_size"], data["test_size"]) == (3000, 2000) and data["valid_size"] >= 500
        assert dict(medium.model) == settings and medium.lr == lr and medium.batch_size == 100
        assert medium.epochs > small.epochs


def test_digits_medium_takes_the_lconv_papers_models_and_rotations():
    for task in ("digits-rot", "digits-rot-scrambled"):
        for model in ("lconv", "cnn", "mlp"):
            medium, paper = get_preset(task, model, "medium"), get_preset(task, model, "paper")
            assert dict(medium.model) == dict(paper.model) and medium.epochs == paper.epochs and medium.data["max_angle_degrees"] == 90.0
