"""Task registry, presets and trainable-model table: building data, baselines, options and their errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from eqbench.tasks import qm9, rotmnist
from eqbench.tasks.datafiles import DataFileError
from eqbench.tasks.datasets import TaskData, TensorDictDataset
from eqbench.tasks.presets import PRESETS, Preset, get_preset, with_overrides
from eqbench.tasks.registry import get_task
from eqbench.tasks.trainable import TRAINABLE, Standardized, build_model, trainable_models

TINY_NBODY = {"train_size": 6, "valid_size": 0, "test_size": 5}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EQBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EQBENCH_ROTMNIST", raising=False)
    monkeypatch.delenv("EQBENCH_QM9", raising=False)


def test_builtin_image_tasks_build_with_chance_baselines():
    data = get_task("digits-rot-scrambled").build({"train_size": 100, "holdout": 50})
    assert len(data.splits["train"]) == 100 and len(data.splits["test"]) == 50
    assert data.inputs == ("images",) and data.target == "labels"
    assert data.meta["image_shape"] == (1, 12, 12) and "stand-in" in data.meta["dataset"]
    assert get_task("digits-rot-scrambled").baseline(data) == pytest.approx(0.1)
    batch = data.splits["train"][[0, 3]]
    assert batch["images"].shape == (2, 1, 12, 12) and batch["labels"].dtype == torch.int64


def test_nbody_task_and_its_no_motion_baseline():
    task = get_task("nbody")
    data = task.build(TINY_NBODY)
    assert set(data.splits) == {"train", "test"}
    test = data.splits["test"].tensors
    expected = ((test["positions"] - test["target"]) ** 2).mean().item()
    assert task.baseline(data) == pytest.approx(expected)
    assert 0.05 < expected < 2.0  # particles do move between frames 30 and 40


def test_options_and_sources_are_checked():
    with pytest.raises(ValueError, match=r"unknown data option\(s\) \['train_sise'\] for task 'nbody'"):
        get_task("nbody").build({"train_sise": 4})
    with pytest.raises(ValueError, match="uses built-in data and takes no data path"):
        get_task("digits-rot").build({}, source="/somewhere")
    with pytest.raises(DataFileError, match=r"needs its data files: pass --data PATH or set \$EQBENCH_ROTMNIST"):
        get_task("rotmnist").build({})
    with pytest.raises(KeyError, match="unknown task 'qm9-homos'; known: .*qm9-homo"):
        get_task("qm9-homos")


def test_rotmnist_tasks_read_amat_files_and_scramble_with_one_permutation(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for name, rows in ((rotmnist.TRAIN_FILE, 6), (rotmnist.TEST_FILE, 4)):
        pixels, labels = rng.random((rows, 784)), rng.integers(0, 10, rows)
        (tmp_path / name).write_text("\n".join(" ".join(map(str, [*p, float(l)])) for p, l in zip(pixels, labels)))
    monkeypatch.setenv("EQBENCH_ROTMNIST", str(tmp_path))
    with pytest.raises(DataFileError, match=r"train_valid\.amat:7: expected the 12,000 published rows, found 6 \(truncated\?"):
        get_task("rotmnist").build({})
    plain = get_task("rotmnist").build({"full_files": False})
    scrambled = get_task("rotmnist-scrambled").build({"seed": 2, "full_files": False})
    assert plain.meta["image_shape"] == (1, 28, 28) and len(plain.splits["test"]) == 4
    for split in ("train", "test"):
        original = plain.splits[split].tensors["images"].flatten(1)
        mixed = scrambled.splits[split].tensors["images"].flatten(1)
        permutation = torch.randperm(784, generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(mixed, original[:, permutation])


def write_molecules(folder, count: int) -> None:
    """``count`` random small molecules as raw QM9 files, plus an empty uncharacterized list."""
    rng = np.random.default_rng(1)
    folder.mkdir()
    for index in range(1, count + 1):
        symbols = ["C", "O"] + ["H"] * int(rng.integers(1, 4))
        properties = rng.normal(size=15)
        lines = [str(len(symbols)), "gdb %d\t" % index + "\t".join(f"{v:.6f}" for v in properties)]
        lines += [f"{s}\t" + "\t".join(f"{v:.6f}" for v in rng.normal(size=3)) + "\t0.1" for s in symbols]
        lines += ["1.0\t2.0", "C\tC", "InChI=1S\tInChI=1S"]
        (folder / f"dsgdb9nsd_{index:06d}.xyz").write_text("\n".join(lines) + "\n")
    (folder / "uncharacterized.txt").write_text("header\n 999 X\n")


def test_qm9_task_splits_standardises_and_baselines(tmp_path):
    write_molecules(tmp_path / "xyz", 40)
    task = get_task("qm9-homo")
    data = task.build({"train_size": 20}, source=tmp_path / "xyz")
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 20, "valid": 5, "test": 4}
    assert data.inputs == ("positions", "charges", "mask") and data.meta["max_atoms"] == 5
    train_target = data.splits["train"].tensors["target"]
    assert data.meta["target_mean"] == pytest.approx(train_target.mean().item())
    test_target = data.splits["test"].tensors["target"]
    expected = (test_target - data.meta["target_mean"]).abs().mean().item() * 1000.0
    assert task.baseline(data) == pytest.approx(expected, rel=1e-5)
    assert task.objective.headline == "mae_meV" and qm9.TARGETS["homo"].unit == "eV"


def test_every_preset_names_a_trainable_model_and_the_acceptance_models_exist():
    assert set(PRESETS) <= set(TRAINABLE)
    assert {"lieconv-so2", "lieconv-so2-gigp", "cnn", "mlp", "lconv"} <= set(trainable_models("digits-rot"))
    assert {"lconv", "cnn", "mlp"} <= set(trainable_models("digits-rot-scrambled"))
    assert {"fa-gnn", "egnn", "gnn"} <= set(trainable_models("nbody"))
    paper = get_preset("digits-rot", "lieconv-so2", "paper")
    assert (paper.lr, paper.batch_size, paper.epochs) == (3e-3, 25, 500)
    assert {k: paper.model[k] for k in ("k", "nbhd", "fill")} == {"k": 128, "nbhd": 25, "fill": 0.1}
    qm9_paper = get_preset("qm9-homo", "lieconv-t3", "paper")
    assert (qm9_paper.batch_size, qm9_paper.lr, qm9_paper.model["k"], qm9_paper.model["nbhd"]) == (75, 3e-3, 1536, 100)
    fa = get_preset("nbody", "fa-gnn", "paper")
    assert (fa.lr, fa.batch_size) == (1e-3, 100)


def test_preset_overrides_and_fallbacks():
    base = get_preset("nbody", "egnn", "small")
    changed = with_overrides(base, ["data.train_size=50", "model.hidden=(8, 8)", "epochs=2", "model.group='SO2'", "model.name=plain"], lr=0.5, batch_size=None)
    assert changed.data["train_size"] == 50 and changed.model["hidden"] == (8, 8) and changed.epochs == 2
    assert changed.lr == 0.5 and changed.batch_size == base.batch_size and changed.model["group"] == "SO2" and changed.model["name"] == "plain"
    assert base.data["train_size"] == 3000  # presets are values: the original is untouched
    with pytest.raises(ValueError, match="option 'modle.hidden': expected data.KEY, model.KEY or one of"):
        with_overrides(base, ["modle.hidden=3"])
    with pytest.raises(ValueError, match="is not KEY=VALUE"):
        with_overrides(base, ["epochs"])
    with pytest.raises(ValueError, match="epochs and batch sizes must be positive"):
        with_overrides(base, ["epochs=0"])
    user = get_preset("nbody", "my-model", "small")
    assert user.model == {} and user.lr == base.lr
    with pytest.raises(KeyError, match=r"unknown preset 'huge'"):
        get_preset("nbody", "egnn", "huge")
    assert Preset("x", 1, 1, 1.0).as_dict()["data"] == {}


def test_model_table_builds_checks_options_and_standardises():
    images = torch.rand(4, 1, 12, 12)
    data = TaskData({"train": TensorDictDataset({"images": images, "labels": torch.arange(4)}), "test": TensorDictDataset({"images": images, "labels": torch.arange(4)})},
                    inputs=("images",), target="labels", meta={"image_shape": (1, 12, 12), "num_classes": 10})
    generator = torch.Generator().manual_seed(0)
    small_lieconv = {"k": 8, "nbhd": 4, "num_layers": 1, "total_ds": 1.0, "fill": 0.5}
    for name, options in (("cnn", {}), ("mlp", {}), ("lconv", {}), ("lconv", {"readout": "mean"}), ("lieconv-so2", small_lieconv), ("lieconv-so2-gigp", small_lieconv)):
        model = build_model("digits-rot", name, options, data, generator)
        assert model(images[:3]).shape == (3, 10)
    with pytest.raises(KeyError, match=r"model 'resnet' is not trainable on task 'digits-rot'; trainable there: \[.*'cnn'"):
        build_model("digits-rot", "resnet", {}, data, generator)
    with pytest.raises(ValueError, match=r"unknown model option\(s\) \['width'\] for cnn on digits-rot; known: \['channels'"):
        build_model("digits-rot", "cnn", {"width": 3}, data, generator)
    scaled = Standardized(torch.nn.Linear(2, 1), mean=5.0, std=2.0)
    torch.nn.init.zeros_(scaled.model.weight)
    torch.nn.init.constant_(scaled.model.bias, 1.0)
    assert scaled(torch.zeros(4, 2)).tolist() == [7.0] * 4
    assert "mean" in scaled.state_dict()


class AtomSum(torch.nn.Module):
    """A small invariant molecule model: sum over atoms of an MLP of (species, distance to the centroid)."""

    def __init__(self) -> None:
        super().__init__()
        self.atom = torch.nn.Sequential(torch.nn.Linear(11, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1))

    def forward(self, positions, charges, mask):
        centroid = (positions * mask[..., None]).sum(1, keepdim=True) / mask.sum(1)[:, None, None]
        radius = (positions - centroid).norm(dim=-1, keepdim=True)
        species = torch.nn.functional.one_hot(charges, 10).float()
        return (self.atom(torch.cat([species, radius], dim=-1)).squeeze(-1) * mask).sum(1)


def test_qm9_task_trains_end_to_end_with_a_user_model(tmp_path, monkeypatch):
    write_molecules(tmp_path / "xyz", 40)
    monkeypatch.setitem(TRAINABLE, ("qm9-homo", "atom-sum"), lambda data, generator: Standardized(AtomSum(), data.meta["target_mean"], data.meta["target_std"]))
    preset = with_overrides(get_preset("qm9-homo", "atom-sum", "small"), epochs=2, batch_size=8, data={"train_size": 24, "valid_size": None, "test_size": None})
    from eqbench.tasks.trainer import TrainConfig, train

    final = train(TrainConfig("qm9-homo", "atom-sum", preset, out=tmp_path / "out", data=tmp_path / "xyz", progress=False)).final
    assert {"train_mae_meV", "valid_mae_meV", "test_mae_meV", "baseline_test_mae_meV"} <= set(final)
    assert final["baseline"] == "training-set mean" and np.isfinite(final["test_mae_meV"])


def test_lieconv_molecule_models_build_on_qm9_data(tmp_path):
    write_molecules(tmp_path / "xyz", 30)
    data = get_task("qm9-homo").build({}, source=tmp_path / "xyz")
    batch = data.splits["train"][list(range(6))]
    inputs = [batch[name] for name in data.inputs]
    tiny = {"k": 8, "nbhd": 4, "num_layers": 1}
    for name in ("lieconv-t3", "lieconv-t3-gigp", "lieconv-se3"):
        model = build_model("qm9-homo", name, tiny, data, torch.Generator().manual_seed(0))
        model.train()
        assert model(*inputs).shape == (6,)
        model.eval()
        out = model(*inputs)  # an untrained model answers near the training mean, in eV
        assert torch.isfinite(out).all() and (out - data.meta["target_mean"]).abs().max() < 20 * data.meta["target_std"]
    gigp = build_model("qm9-homo", "lieconv-t3-gigp", tiny, data, torch.Generator().manual_seed(0)).model.network.pool
    assert bool(gigp.fitted) and gigp.bins[0] >= 0


def stand_in_data(task: str) -> TaskData:
    """Four random examples shaped like ``task``'s data, with the meta facts the model builders read."""
    rng = torch.Generator().manual_seed(0)
    if task == "nbody":
        fields = {name: torch.randn(4, 5, 3, generator=rng) for name in ("positions", "velocities", "target")}
        fields["charges"] = torch.randint(0, 2, (4, 5, 1), generator=rng) * 2.0 - 1.0
        inputs, target, meta = ("positions", "velocities", "charges"), "target", {}
    elif task.startswith("qm9-"):
        charges = torch.tensor([6, 1, 1, 8, 0])[None].repeat(4, 1)
        fields = {"positions": torch.randn(4, 5, 3, generator=rng), "charges": charges, "mask": charges > 0, "target": torch.randn(4, generator=rng)}
        inputs, target = ("positions", "charges", "mask"), "target"
        meta = {"species": sorted(qm9.ATOMIC_NUMBERS.values()), "target_mean": 0.0, "target_std": 1.0}
    else:
        side = 28 if task.startswith("rotmnist") else 12
        fields = {"images": torch.rand(4, 1, side, side, generator=rng), "labels": torch.arange(4)}
        inputs, target, meta = ("images",), "labels", {"image_shape": (1, side, side), "num_classes": 10}
    split = TensorDictDataset(fields)
    return TaskData({"train": split, "test": split}, inputs=inputs, target=target, meta=meta)


@pytest.mark.parametrize("task", ["digits-rot", "rotmnist", "nbody", "qm9-homo"])
def test_every_preset_builds_its_model_and_small_ones_run(task):
    data = stand_in_data(task)
    batch = data.splits["train"][[0, 1]]
    for (preset_task, model), presets in PRESETS.items():
        if preset_task != task:
            continue
        for name, preset in presets.items():
            network = build_model(task, model, preset.model, data, torch.Generator().manual_seed(0))
            if name == "small":
                output = network(*(batch[field] for field in data.inputs))
                assert output.shape[0] == 2 and torch.isfinite(output).all(), (model, name)
