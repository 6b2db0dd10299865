"""Rotated MNIST ``.amat`` loading (parse, cache, malformed files) and the rotated-digits stand-in."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from eqbench.tasks import rotmnist
from eqbench.tasks.datafiles import DataFileError


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EQBENCH_CACHE", str(tmp_path / "cache"))


def amat_rows(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((count, rotmnist.PIXELS)).astype(np.float32), rng.integers(0, 10, count)


def write_amat(path: Path, pixels: np.ndarray, labels: np.ndarray) -> Path:
    lines = [" ".join(f"{v:.8e}" for v in row) + f" {float(label):.18e}" for row, label in zip(pixels, labels)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_amat_rows_become_images_and_labels(tmp_path):
    pixels, labels = amat_rows(5)
    images, loaded_labels = rotmnist.load_amat(write_amat(tmp_path / "train.amat", pixels, labels))
    assert images.shape == (5, 1, 28, 28) and images.dtype == torch.float32
    assert torch.equal(loaded_labels, torch.as_tensor(labels, dtype=torch.int64))
    # row-major: pixel 28 * i + j of a row is image[0, i, j]
    np.testing.assert_allclose(images[3, 0, 2, 5].item(), pixels[3, 2 * 28 + 5], rtol=1e-6)


def test_amat_is_parsed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    path = write_amat(tmp_path / "train.amat", *amat_rows(3))
    first = rotmnist.load_amat(path)
    assert list((tmp_path / "cache" / "rotmnist").glob("train-*.npz"))

    def refuse(_):
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(rotmnist, "parse_amat", refuse)
    second = rotmnist.load_amat(path)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_a_changed_file_is_parsed_again(tmp_path):
    path = write_amat(tmp_path / "train.amat", *amat_rows(3))
    rotmnist.load_amat(path)
    write_amat(path, *amat_rows(4, seed=1))
    assert rotmnist.load_amat(path)[0].shape[0] == 4


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda line: line.rsplit(" ", 300)[0], r"bad\.amat:2: expected 785 numbers \(784 pixel values then the label\), got 485"),
        (lambda line: line.replace(" ", " pixel ", 1), r"bad\.amat:2: expected 785 numbers .* got 786"),
        (lambda line: "x" + line[1:], r"bad\.amat:2: column 1: expected a number, got 'x"),
        (lambda line: line.rsplit(" ", 1)[0] + " 10.0", r"bad\.amat:2: column 785: expected a label in 0\.\.9, got '10\.0'"),
        (lambda line: line.rsplit(" ", 1)[0] + " 2.5", r"bad\.amat:2: column 785: expected a label in 0\.\.9, got '2\.5'"),
        (lambda line: "nan" + line[line.index(" "):], r"bad\.amat:2: column 1: expected a finite number, got 'nan'"),
    ],
)
def test_malformed_rows_name_the_file_line_and_expectation(tmp_path, damage, message):
    path = write_amat(tmp_path / "bad.amat", *amat_rows(3))
    lines = path.read_text().splitlines()
    lines[1] = damage(lines[1])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=message):
        rotmnist.parse_amat(path)


def test_truncated_and_empty_files_are_errors(tmp_path):
    path = write_amat(tmp_path / "cut.amat", *amat_rows(2))
    text = path.read_text()
    path.write_text(text[: len(text) - 2000])  # cut inside the last row, as an interrupted download would
    with pytest.raises(DataFileError, match=r"cut\.amat:2: expected 785 numbers"):
        rotmnist.parse_amat(path)
    (tmp_path / "empty.amat").write_text("\n\n")
    with pytest.raises(DataFileError, match=r"empty\.amat: no data rows"):
        rotmnist.parse_amat(tmp_path / "empty.amat")
    with pytest.raises(DataFileError, match=r"missing\.amat: cannot open"):
        rotmnist.parse_amat(tmp_path / "missing.amat")


def test_rotmnist_folder_needs_both_published_files(tmp_path):
    write_amat(tmp_path / rotmnist.TRAIN_FILE, *amat_rows(2))
    with pytest.raises(DataFileError, match=rotmnist.TEST_FILE):
        rotmnist.load_rotmnist(tmp_path)
    write_amat(tmp_path / rotmnist.TEST_FILE, *amat_rows(3))
    with pytest.raises(DataFileError, match=r"train_valid\.amat:3: expected the 12,000 published rows, found 2 \(truncated\?"):
        rotmnist.load_rotmnist(tmp_path)
    loaded = rotmnist.load_rotmnist(tmp_path, full=False)
    assert loaded["train"][0].shape[0] == 2 and loaded["test"][0].shape[0] == 3


def test_published_row_counts_are_enforced(tmp_path, monkeypatch):
    monkeypatch.setitem(rotmnist.PUBLISHED_ROWS, rotmnist.TRAIN_FILE, 3)
    monkeypatch.setitem(rotmnist.PUBLISHED_ROWS, rotmnist.TEST_FILE, 2)
    write_amat(tmp_path / rotmnist.TRAIN_FILE, *amat_rows(3))
    write_amat(tmp_path / rotmnist.TEST_FILE, *amat_rows(2))
    loaded = rotmnist.load_rotmnist(tmp_path)
    assert [len(loaded[split][1]) for split in ("train", "test")] == [3, 2]
    write_amat(tmp_path / rotmnist.TEST_FILE, *amat_rows(4))
    with pytest.raises(DataFileError, match=r"test\.amat:3: expected the 2 published rows, found 4 \(not the published file\?"):
        rotmnist.load_rotmnist(tmp_path)


def test_digits_standin_is_seeded_rotated_and_split():
    first = rotmnist.digits_variant("rotated", seed=3, holdout=100)
    again = rotmnist.digits_variant("rotated", seed=3, holdout=100)
    other = rotmnist.digits_variant("rotated", seed=4, holdout=100)
    assert first["train"][0].shape == (1697, 1, 12, 12) and first["test"][0].shape == (100, 1, 12, 12)
    assert all(torch.equal(first[s][i], again[s][i]) for s in ("train", "test") for i in (0, 1))
    assert not torch.equal(first["test"][0], other["test"][0])
    # every class is present in both splits and the ink stays inside the padded frame
    assert set(first["test"][1].tolist()) == set(range(10))
    plain, _ = rotmnist.digits_images()
    assert plain[:, :, :2].abs().sum() == 0 and plain[:, :, :, -2:].abs().sum() == 0
    kept = first["train"][0].sum() / plain.sum() * len(plain) / 1697
    assert 0.9 < kept.item() < 1.1  # rotation moves ink, it does not lose it


def test_digits_rotation_range_is_respected():
    still = rotmnist.digits_variant("rotated", seed=0, max_angle=0.0)
    plain = rotmnist.digits_variant("plain", seed=0)
    torch.testing.assert_close(still["train"][0], plain["train"][0], atol=1e-5, rtol=0)
    turned = rotmnist.digits_variant("rotated", seed=0, max_angle=math.pi)
    assert (turned["train"][0] - plain["train"][0]).abs().mean() > 0.05
    with pytest.raises(ValueError, match="holdout must be in 1..1796"):
        rotmnist.digits_variant("rotated", holdout=0)
