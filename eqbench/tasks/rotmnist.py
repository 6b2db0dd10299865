"""Rotated MNIST from the published ``.amat`` files, and its out-of-the-box stand-in "digits-rot".

Rotated MNIST (Larochelle et al., ICML 2007; the benchmark of LieConv and GIGP) ships as two
text files, ``mnist_all_rotation_normalized_float_train_valid.amat`` (12,000 rows) and
``mnist_all_rotation_normalized_float_test.amat`` (50,000 rows). Each row holds 784 pixel
intensities in ``[0, 1]`` followed by the label (``0..9``, written as a float), separated by
white space. Pixels are reshaped row-major to ``28 x 28`` as stored (the files hold the digits
transposed with respect to MNIST; a transposition is a reflection, which the rotation task does
not care about). A parsed file is cached as ``.npz`` (see :mod:`eqbench.tasks.datafiles`).
A published file with fewer or more rows than published (a download cut at a line boundary)
is an error naming the line where the missing rows should start, unless the caller accepts subsets.

"digits-rot (stand-in)": scikit-learn's bundled 8 x 8 digits (1,797 images, 16 grey levels,
UCI optical digits), zero-padded to 12 x 12 so that no ink leaves the frame when turned,
scaled to ``[0, 1]`` and each rotated by its own angle, uniform on the circle, drawn from a
seed (:func:`eqbench.tasks.images.image_variant`). It is a small stand-in, not rotated MNIST:
numbers on it are not comparable with published rotMNIST errors.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from eqbench.tasks.datafiles import DataFileError, cache_dir, cached_arrays, fingerprint
from eqbench.tasks.images import image_variant

PIXELS = 784
SIDE = 28
NUM_CLASSES = 10
TRAIN_FILE = "mnist_all_rotation_normalized_float_train_valid.amat"
TEST_FILE = "mnist_all_rotation_normalized_float_test.amat"
#: Rows of the published files (Larochelle et al. 2007): 10,000 train + 2,000 valid, and the test set.
PUBLISHED_ROWS = {TRAIN_FILE: 12_000, TEST_FILE: 50_000}
STANDIN_NAME = "digits-rot (stand-in)"
STANDIN_PAD = 2


def parse_amat(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Parse a rotated-MNIST ``.amat`` file: ``(pixels (N, 784) float32, labels (N,) int64)``.

    Raises :class:`DataFileError` naming the file and line of any row that does not hold
    784 finite numbers and an integer label in ``0..9``. Blank lines are skipped.
    """
    path = Path(path)
    pixels: list[np.ndarray] = []
    labels: list[int] = []
    try:
        stream = path.open("r", encoding="ascii")
    except OSError as error:
        raise DataFileError(path, None, f"cannot open ({error.strerror})") from error
    with stream:
        try:
            for number, line in enumerate(stream, start=1):
                tokens = line.split()
                if tokens:
                    row_pixels, label = _parse_row(path, number, tokens)
                    pixels.append(row_pixels)
                    labels.append(label)
        except UnicodeDecodeError as error:
            raise DataFileError(path, None, f"not a text .amat file ({error.reason} at byte {error.start})") from error
    if not pixels:
        raise DataFileError(path, None, f"no data rows (expected rows of {PIXELS} pixel values then the label)")
    return np.stack(pixels), np.asarray(labels, dtype=np.int64)


def load_amat(path: Path | str) -> tuple[Tensor, Tensor]:
    """``(images (N, 1, 28, 28) float32, labels (N,) int64)`` from an ``.amat`` file, parsed once then cached."""
    path = Path(path)

    def parse() -> dict[str, np.ndarray]:
        pixels, labels = parse_amat(path)
        return {"pixels": pixels, "labels": labels}

    arrays = cached_arrays(cache_dir() / "rotmnist" / f"{path.stem}-{fingerprint(path)}.npz", parse)
    images = torch.from_numpy(arrays["pixels"]).reshape(-1, 1, SIDE, SIDE)
    return images, torch.from_numpy(arrays["labels"])


def load_rotmnist(folder: Path | str, *, full: bool = True) -> dict[str, tuple[Tensor, Tensor]]:
    """``{"train": ..., "test": ...}`` from a folder holding :data:`TRAIN_FILE` and :data:`TEST_FILE`.

    With ``full`` each file must hold its :data:`PUBLISHED_ROWS` (``full=False`` accepts
    subsets, e.g. the first rows of each file).
    """
    folder = Path(folder)
    missing = [name for name in (TRAIN_FILE, TEST_FILE) if not (folder / name).is_file()]
    if missing:
        raise DataFileError(folder, None, f"rotated MNIST folder lacks {missing} (the published .amat files)")
    loaded = {}
    for split, name in (("train", TRAIN_FILE), ("test", TEST_FILE)):
        images, labels = load_amat(folder / name)
        rows, published = len(labels), PUBLISHED_ROWS[name]
        if full and rows != published:
            problem = "truncated?" if rows < published else "not the published file?"
            raise DataFileError(folder / name, min(rows, published) + 1, f"expected the {published:,} published rows, found {rows:,} ({problem}; full=False accepts subsets)")
        loaded[split] = (images, labels)
    return loaded


def digits_images() -> tuple[Tensor, Tensor]:
    """scikit-learn's 1,797 digits as ``(images (N, 1, 12, 12) float32 in [0, 1], labels (N,) int64)``, zero-padded."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    images = torch.nn.functional.pad(images, (STANDIN_PAD,) * 4)
    return images, torch.from_numpy(digits.target.astype(np.int64))


def digits_variant(variant: str, *, seed: int = 0, holdout: int = 500, max_angle: float = math.pi) -> dict[str, tuple[Tensor, Tensor]]:
    """The stand-in digits turned into an image variant (``"rotated"``, ``"rotated_scrambled"``, ...), split in two.

    Every image gets its own angle, uniform in ``[-max_angle, max_angle]`` (the full circle by
    default), and for scrambled variants all share one pixel permutation, both drawn from
    ``seed``; the train/test split is a permutation drawn from ``seed`` too, with ``holdout``
    test images.
    """
    images, labels = digits_images()
    if not 0 < holdout < len(labels):
        raise ValueError(f"holdout must be in 1..{len(labels) - 1}, got {holdout}")
    images = image_variant(images, variant, seed=seed, max_angle=max_angle)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    test, train = order[:holdout], order[holdout:]
    return {"train": (images[train], labels[train]), "test": (images[test], labels[test])}


def _parse_row(path: Path, number: int, tokens: list[str]) -> tuple[np.ndarray, int]:
    expected = f"{PIXELS} pixel values then the label"
    if len(tokens) != PIXELS + 1:
        raise DataFileError(path, number, f"expected {PIXELS + 1} numbers ({expected}), got {len(tokens)}")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        values = np.array([_number(path, number, column, token) for column, token in enumerate(tokens, start=1)])
    if not np.isfinite(values).all():
        column = int(np.flatnonzero(~np.isfinite(values))[0]) + 1
        raise DataFileError(path, number, f"column {column}: expected a finite number, got {tokens[column - 1]!r}")
    label = values[-1]
    if label != round(label) or not 0 <= label < NUM_CLASSES:
        raise DataFileError(path, number, f"column {PIXELS + 1}: expected a label in 0..{NUM_CLASSES - 1}, got {tokens[-1]!r}")
    return values[:-1].astype(np.float32), int(label)


def _number(path: Path, number: int, column: int, token: str) -> float:
    try:
        return float(token)
    except ValueError:
        raise DataFileError(path, number, f"column {column}: expected a number, got {token!r}") from None
