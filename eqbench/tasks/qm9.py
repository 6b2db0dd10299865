"""QM9 (Ramakrishnan, Dral, Rupp, von Lilienfeld, Sci. Data 2014): loaders, targets, units and the usual split.

Sources (no network):

* the raw archive ``dsgdb9nsd.xyz.tar.bz2`` or a folder of its ``dsgdb9nsd_NNNNNN.xyz`` files, with
  the list of the 3,054 molecules that failed the geometry consistency check
  (``uncharacterized.txt``), which are excluded;
* the CSVs of the ``qm9pack`` wheel (``qm9pack/data/qm9_part{1,2,3}.csv``; the optional extra
  ``eqbench[qm9]``), which already exclude them: the installed package, the ``.whl`` file itself
  or a folder holding the CSVs.

A raw ``.xyz`` file of ``n`` atoms has ``n + 5`` lines: ``n``; ``gdb <index>`` and the 15 properties
``A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv`` (GHz, D, bohr^3, Hartree for energies,
bohr^2, cal/mol K); ``n`` lines ``<element> x y z <Mulliken charge>`` (Angstrom, numbers may use
Mathematica's ``*^`` exponent, e.g. ``1.5*^-6``); the harmonic frequencies; the SMILES; the InChI.

Targets follow Cormorant (Anderson et al. 2019), whose preprocessing LieConv and GIGP use:
energies in eV (1 Hartree = 27.211386245988 eV, CODATA 2018); ``U0, U, H, G`` minus the
atomic reference energies of QM9's ``atomref.txt`` (B3LYP/6-31G(2df,p), one value per H, C, N,
O, F atom: the atomisation energy); errors on energies reported in meV. Split: 100,000 train,
10% test (13,083) and the rest validation (17,748) by a permutation with a fixed seed; other
sizes are split in the same proportions.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import re
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch
from torch import Tensor

from eqbench.tasks.datafiles import DataFileError, cache_dir, cached_arrays, fingerprint

#: The 15 properties of line 2 of a raw file, after ``gdb <index>``, in file order and units.
PROPERTIES = ("A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv")
ATOMIC_NUMBERS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
HARTREE_TO_EV = 27.211386245988
#: Atomic reference energies (Hartree) of QM9's atomref.txt, per thermodynamic energy and element.
ATOM_REFERENCE_HARTREE = {
    "U0": {"H": -0.500273, "C": -37.846772, "N": -54.583861, "O": -75.064579, "F": -99.718730},
    "U": {"H": -0.498857, "C": -37.845355, "N": -54.582445, "O": -75.063163, "F": -99.717314},
    "H": {"H": -0.497912, "C": -37.844411, "N": -54.581501, "O": -75.062219, "F": -99.716370},
    "G": {"H": -0.510927, "C": -37.861317, "N": -54.598897, "O": -75.079532, "F": -99.733544},
}
NUM_MOLECULES = 130_831
NUM_UNCHARACTERIZED = 3_054
SPLIT_TRAIN = 100_000
UNCHARACTERIZED_FILE = "uncharacterized.txt"
QM9PACK_CSVS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
#: qm9pack CSV column of each property.
QM9PACK_COLUMNS = dict(
    zip(
        PROPERTIES,
        ("RotA_GHz", "RotB_GHz", "RotC_GHz", "Dipole_debye", "Polarizability_bohr3", "HOMO_au", "LUMO_au",
         "HOMO_LUMO_gap_au", "R2_bohr2", "ZPVE_au", "InternalEnergy_0K_au", "InternalEnergy_298K_au",
         "Enthalphy_298K_au", "GibbsFreeEnergy_298K_au", "Heatcapacity_Cv_cal_mol_K"),
    )
)
_XYZ_NAME = re.compile(r"dsgdb9nsd_\d+\.xyz$")
_CSV_ELEMENT = re.compile(r"'([A-Za-z]+)'")


@dataclass(frozen=True)
class Target:
    """A regression target: its property, the factor from file units to training units, and how errors are reported."""

    prop: str
    unit: str
    factor: float
    report_unit: str
    report_factor: float
    atom_reference: bool = False


#: The twelve targets of the QM9 benchmark (Cormorant / LieConv units).
TARGETS: dict[str, Target] = {
    "mu": Target("mu", "D", 1.0, "D", 1.0),
    "alpha": Target("alpha", "bohr^3", 1.0, "bohr^3", 1.0),
    "homo": Target("homo", "eV", HARTREE_TO_EV, "meV", 1000.0),
    "lumo": Target("lumo", "eV", HARTREE_TO_EV, "meV", 1000.0),
    "gap": Target("gap", "eV", HARTREE_TO_EV, "meV", 1000.0),
    "r2": Target("r2", "bohr^2", 1.0, "bohr^2", 1.0),
    "zpve": Target("zpve", "eV", HARTREE_TO_EV, "meV", 1000.0),
    "U0": Target("U0", "eV", HARTREE_TO_EV, "meV", 1000.0, atom_reference=True),
    "U": Target("U", "eV", HARTREE_TO_EV, "meV", 1000.0, atom_reference=True),
    "H": Target("H", "eV", HARTREE_TO_EV, "meV", 1000.0, atom_reference=True),
    "G": Target("G", "eV", HARTREE_TO_EV, "meV", 1000.0, atom_reference=True),
    "Cv": Target("Cv", "cal/mol K", 1.0, "cal/mol K", 1.0),
}


@dataclass(frozen=True)
class Molecule:
    """One parsed molecule: its GDB index, element symbols, positions ``(n, 3)`` (Angstrom) and the 15 :data:`PROPERTIES`."""

    index: int
    symbols: tuple[str, ...]
    positions: np.ndarray
    properties: np.ndarray


# ------------------------------------------------------------------ raw .xyz files
def parse_xyz(text: str, path: Path | str) -> Molecule:
    """Parse the text of one raw QM9 ``.xyz`` file (``path`` names it in errors)."""
    lines = text.splitlines()

    def line(number: int, expected: str) -> list[str]:
        if number > len(lines):
            raise DataFileError(path, number, f"expected {expected}, found the end of the file (truncated?)")
        return lines[number - 1].split()

    header = line(1, "the number of atoms")
    if len(header) != 1 or not header[0].isdigit() or int(header[0]) < 1:
        raise DataFileError(path, 1, f"expected the number of atoms (a positive integer), got {lines[0]!r}")
    count = int(header[0])
    scalars = line(2, f"'gdb <index>' and {len(PROPERTIES)} properties")
    if len(scalars) != 2 + len(PROPERTIES) or scalars[0] != "gdb" or not scalars[1].isdigit():
        raise DataFileError(path, 2, f"expected 'gdb <index>' and {len(PROPERTIES)} properties ({' '.join(PROPERTIES)}), got {len(scalars)} fields")
    properties = np.array([_number(path, 2, token, prop) for token, prop in zip(scalars[2:], PROPERTIES)])
    symbols, positions = [], []
    for number in range(3, 3 + count):
        atom = line(number, f"atom {number - 2} of {count}: '<element> x y z <charge>'")
        if len(atom) != 5:
            raise DataFileError(path, number, f"expected atom {number - 2} of {count} as '<element> x y z <charge>', got {len(atom)} fields")
        if atom[0] not in ATOMIC_NUMBERS:
            raise DataFileError(path, number, f"expected an element among {sorted(ATOMIC_NUMBERS)}, got {atom[0]!r}")
        symbols.append(atom[0])
        positions.append([_number(path, number, token, axis) for token, axis in zip(atom[1:4], "xyz")])
        _number(path, number, atom[4], "Mulliken charge")
    line(count + 3, "the harmonic frequencies")
    line(count + 4, "the SMILES strings")
    line(count + 5, "the InChI strings")
    return Molecule(int(scalars[1]), tuple(symbols), np.array(positions), properties)


def read_uncharacterized(path: Path | str) -> set[int]:
    """GDB indices listed in ``uncharacterized.txt`` (or any file listing one index first on each data line).

    Header, separator and blank lines (first field not an integer) are skipped.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise DataFileError(path, None, f"cannot read ({error.strerror})") from error
    indices = {int(fields[0]) for fields in map(str.split, text.splitlines()) if fields and fields[0].isdigit()}
    if not indices:
        raise DataFileError(path, None, "no molecule indices (expected lines starting with a GDB index)")
    return indices


def iter_xyz_source(source: Path) -> Iterator[tuple[str, str]]:
    """``(name, text)`` of every ``dsgdb9nsd_*.xyz`` file in a folder or a (compressed) tar archive, by name."""
    if source.is_dir():
        for path in sorted(p for p in source.iterdir() if _XYZ_NAME.match(p.name)):
            yield str(path), path.read_text(encoding="utf-8")
        return
    try:
        archive = tarfile.open(source, "r:*")
    except (tarfile.TarError, OSError) as error:
        raise DataFileError(source, None, f"not a folder of .xyz files or a tar archive of them ({error})") from error
    with archive:
        members = sorted((m for m in archive if m.isfile() and _XYZ_NAME.search(m.name)), key=lambda m: m.name)
        for member in members:
            stream = archive.extractfile(member)
            assert stream is not None  # regular files always have a stream
            yield f"{source}:{member.name}", stream.read().decode("utf-8")


# ------------------------------------------------------------------ qm9pack CSVs
def iter_qm9pack_csv(stream: IO[str], name: str) -> Iterator[Molecule]:
    """Molecules of one qm9pack CSV (``Index, N_atoms, Elements, XYZ_Ang`` and the property columns)."""
    csv.field_size_limit(sys.maxsize)
    reader = csv.DictReader(stream)
    required = ["Index", "N_atoms", "Elements", "XYZ_Ang", *QM9PACK_COLUMNS.values()]
    missing = [column for column in required if column not in (reader.fieldnames or [])]
    if missing:
        raise DataFileError(name, 1, f"expected a qm9pack CSV header with the columns {missing}")
    for row in reader:
        number = reader.line_num
        if None in row.values() or None in row:
            raise DataFileError(name, number, f"expected {len(reader.fieldnames or [])} columns (truncated or malformed row)")
        symbols = tuple(_CSV_ELEMENT.findall(row["Elements"]))
        unknown = [s for s in symbols if s not in ATOMIC_NUMBERS]
        if not symbols or unknown:
            raise DataFileError(name, number, f"column Elements: expected a list of {sorted(ATOMIC_NUMBERS)}, got {row['Elements'][:60]!r}")
        coordinates = [_number(name, number, token, "XYZ_Ang") for token in row["XYZ_Ang"].replace("[", " ").replace("]", " ").replace(",", " ").split()]
        if not row["N_atoms"].isdigit() or int(row["N_atoms"]) != len(symbols) or len(coordinates) != 3 * len(symbols):
            raise DataFileError(name, number, f"expected N_atoms ({row['N_atoms']}) elements and 3 coordinates each, got {len(symbols)} elements and {len(coordinates)} coordinates")
        if not row["Index"].isdigit():
            raise DataFileError(name, number, f"column Index: expected a positive integer, got {row['Index']!r}")
        properties = np.array([_number(name, number, row[column], prop) for prop, column in QM9PACK_COLUMNS.items()])
        yield Molecule(int(row["Index"]), symbols, np.reshape(coordinates, (-1, 3)), properties)


def qm9pack_streams(source: Path | str) -> Iterator[tuple[IO[str], str]]:
    """Text streams of the three qm9pack CSVs from ``"qm9pack"`` (the installed package), a ``.whl`` or a folder."""
    if str(source) == "qm9pack":
        yield from qm9pack_streams(qm9pack_folder())
        return
    source = Path(source)
    if source.is_dir():
        for name in QM9PACK_CSVS:
            path = source / name
            if not path.is_file():
                raise DataFileError(source, None, f"qm9pack CSV folder lacks {name}")
            with path.open(newline="", encoding="utf-8") as stream:
                yield stream, str(path)
        return
    try:
        wheel = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataFileError(source, None, f"not a qm9pack wheel or CSV folder ({error})") from error
    with wheel:
        for name in QM9PACK_CSVS:
            member = f"qm9pack/data/{name}"
            if member not in wheel.namelist():
                raise DataFileError(source, None, f"wheel lacks {member}")
            with wheel.open(member) as raw:
                yield io.TextIOWrapper(raw, encoding="utf-8", newline=""), f"{source}:{member}"


def qm9pack_folder() -> Path:
    """The data folder of the installed ``qm9pack`` package (``pip install eqbench[qm9]``)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or spec.origin is None:
        raise DataFileError("qm9pack", None, "the qm9pack package is not installed (pip install 'eqbench[qm9]', or give the .whl or a CSV folder)")
    return Path(spec.origin).parent / "data"


# ------------------------------------------------------------------ loading, caching, tensors
def load_qm9(source: Path | str, uncharacterized: Path | str | None = None, *, exclude: bool = True) -> dict[str, np.ndarray]:
    """QM9 as padded arrays, parsed once and cached.

    ``source``: ``"qm9pack"``, a qm9pack ``.whl``, a folder of qm9pack CSVs, a folder of raw
    ``.xyz`` files or their tar archive. Raw sources exclude the molecules listed in
    ``uncharacterized`` (default: ``uncharacterized.txt`` beside the source); a missing list is
    an error unless ``exclude=False``. Returns ``index (M,)``, ``atomic_numbers (M, A)``
    (0 pads), ``positions (M, A, 3)`` (Angstrom) and ``properties (M, 15)`` (file units, see
    :data:`PROPERTIES`), molecules sorted by index.
    """
    kind, files = _classify(source)
    skip: set[int] = set()
    if exclude and (kind == "xyz" or uncharacterized):
        listing = Path(uncharacterized) if uncharacterized else _default_listing(Path(source))
        if not listing.is_file():
            raise DataFileError(listing, None, f"list of the {NUM_UNCHARACTERIZED:,} uncharacterized molecules not found (give it, or exclude=False to keep them)")
        skip = read_uncharacterized(listing)
        files = [*files, listing]

    def parse() -> dict[str, np.ndarray]:
        if kind == "xyz":
            molecules: Iterable[Molecule] = (parse_xyz(text, name) for name, text in iter_xyz_source(Path(source)))
        else:
            molecules = (m for stream, name in qm9pack_streams(source) for m in iter_qm9pack_csv(stream, name))
        return pad_molecules([m for m in molecules if m.index not in skip], str(source))

    return cached_arrays(cache_dir() / "qm9" / f"{kind}-{fingerprint(*files)}-{exclude}.npz", parse)


def pad_molecules(molecules: list[Molecule], source: str) -> dict[str, np.ndarray]:
    """Stack molecules (sorted by index) into the padded arrays of :func:`load_qm9`; duplicate indices are an error."""
    if not molecules:
        raise DataFileError(source, None, "no molecules found")
    molecules = sorted(molecules, key=lambda m: m.index)
    indices = np.array([m.index for m in molecules], dtype=np.int64)
    repeated = indices[1:][indices[1:] == indices[:-1]]
    if repeated.size:
        raise DataFileError(source, None, f"molecule index {int(repeated[0])} appears more than once")
    width = max(len(m.symbols) for m in molecules)
    numbers = np.zeros((len(molecules), width), dtype=np.int64)
    positions = np.zeros((len(molecules), width, 3), dtype=np.float32)
    for row, molecule in enumerate(molecules):
        numbers[row, : len(molecule.symbols)] = [ATOMIC_NUMBERS[s] for s in molecule.symbols]
        positions[row, : len(molecule.symbols)] = molecule.positions
    properties = np.stack([m.properties for m in molecules])
    return {"index": indices, "atomic_numbers": numbers, "positions": positions, "properties": properties}


def target_values(arrays: dict[str, np.ndarray], target: str) -> np.ndarray:
    """``(M,)`` float64 values of ``target`` in training units (:data:`TARGETS`), atom references subtracted where due."""
    if target not in TARGETS:
        raise ValueError(f"unknown QM9 target {target!r}; known: {sorted(TARGETS)}")
    spec = TARGETS[target]
    values = arrays["properties"][:, PROPERTIES.index(spec.prop)].astype(np.float64)
    if spec.atom_reference:
        references = np.zeros(max(ATOMIC_NUMBERS.values()) + 1)
        for symbol, energy in ATOM_REFERENCE_HARTREE[spec.prop].items():
            references[ATOMIC_NUMBERS[symbol]] = energy
        values = values - references[arrays["atomic_numbers"]].sum(axis=1)
    return values * spec.factor


def split_indices(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The usual split of ``count`` molecules: 100,000 / 17,748 / 13,083 for all 130,831, proportional otherwise.

    ``train = round(count * 100000 / 130831)``, ``test = floor(count / 10)``, ``valid`` the rest,
    from one permutation drawn by ``numpy.random.default_rng(seed)``.
    """
    if count < 3:
        raise ValueError(f"need at least 3 molecules to split, got {count}")
    train = round(count * SPLIT_TRAIN / NUM_MOLECULES)
    test = max(count // 10, 1)
    train = min(train, count - test - 1)
    order = np.random.default_rng(seed).permutation(count)
    return {"train": order[:train], "valid": order[train : count - test], "test": order[count - test :]}


def molecule_tensors(arrays: dict[str, np.ndarray], target: str, rows: np.ndarray) -> dict[str, Tensor]:
    """Task tensors of the molecules ``rows``: ``positions (M, A, 3)``, ``charges (M, A)`` (atomic numbers, 0 pads), ``mask``, ``target (M,)``."""
    numbers = torch.from_numpy(arrays["atomic_numbers"][rows])
    return {
        "positions": torch.from_numpy(arrays["positions"][rows]).float(),
        "charges": numbers,
        "mask": numbers > 0,
        "target": torch.from_numpy(target_values(arrays, target)[rows]).float(),
    }


def _classify(source: Path | str) -> tuple[str, list[Path]]:
    """``("xyz" | "csv", files to fingerprint)`` of a source."""
    if str(source) == "qm9pack":
        folder = qm9pack_folder()
        return "csv", [folder / name for name in QM9PACK_CSVS]
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if _XYZ_NAME.match(p.name))
        if files:
            return "xyz", files
        if (path / QM9PACK_CSVS[0]).is_file():
            return "csv", [path / name for name in QM9PACK_CSVS if (path / name).is_file()]
        raise DataFileError(path, None, f"folder holds neither dsgdb9nsd_*.xyz files nor qm9pack CSVs ({', '.join(QM9PACK_CSVS)})")
    if not path.is_file():
        raise DataFileError(path, None, "QM9 source not found (a folder, a tar archive of .xyz files, a qm9pack .whl or 'qm9pack')")
    return ("csv" if zipfile.is_zipfile(path) else "xyz"), [path]


def _default_listing(source: Path) -> Path:
    """``uncharacterized.txt`` inside a source folder, or beside a source archive."""
    return (source if source.is_dir() else source.parent) / UNCHARACTERIZED_FILE


def _number(path: Path | str, line: int, token: str, what: str) -> float:
    """A float from a QM9 field; Mathematica's ``*^`` exponent (``1.5*^-6``) is accepted."""
    try:
        return float(token.replace("*^", "e"))
    except ValueError:
        raise DataFileError(path, line, f"expected a number for {what}, got {token!r}") from None
