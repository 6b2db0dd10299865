"""QM9 loading from raw .xyz files (folder, tar archive) and qm9pack CSVs (folder, wheel); targets, units, split, errors."""
from __future__ import annotations

import csv
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from eqbench.tasks import qm9
from eqbench.tasks.datafiles import DataFileError

# dsgdb9nsd_000001.xyz (methane) in the published layout, with one Mathematica exponent.
METHANE = """5
gdb 1\t157.7118\t157.70997\t157.70699\t0.\t13.21\t-0.3877\t0.1171\t0.5048\t35.3641\t0.044749\t-40.47893\t-40.476062\t-40.475117\t-40.498597\t6.469\t
C\t-0.0126981359\t 1.0858041578\t 0.0080009958\t-0.535689
H\t 0.002150416\t-0.0060313176\t 0.0019761204\t 0.133921
H\t 1.0117308433\t 1.4637511618\t 2.765748*^-4\t 0.133922
H\t-0.540815069\t 1.4475266138\t-0.8766437152\t 0.133923
H\t-0.5238136345\t 1.4379326443\t 0.9063972942\t 0.133923
1341.307\t1341.3284\t1341.365\t1562.6731\t1562.7453\t3038.3205\t3151.6034\t3151.6788\t3151.7078
C\tC\t
InChI=1S/CH4/h1H4\tInChI=1S/CH4/h1H4
"""
PROPERTY_VALUES = [157.7118, 157.70997, 157.70699, 0.0, 13.21, -0.3877, 0.1171, 0.5048, 35.3641, 0.044749, -40.47893, -40.476062, -40.475117, -40.498597, 6.469]
# The header and first row of qm9pack 1.0.3's qm9pack/data/qm9_part1.csv, as published.
QM9PACK_PART1_HEAD = (
    "XYZ_file,Index,SMILES,InChi,N_atoms,Stoichiometry,Elements,XYZ_Ang,Mulliken_pop,Harmonic_Freq_cmi,RotA_GHz,RotB_GHz,"
    "RotC_GHz,Dipole_debye,Polarizability_bohr3,HOMO_au,LUMO_au,HOMO_LUMO_gap_au,R2_bohr2,ZPVE_au,InternalEnergy_0K_au,"
    "InternalEnergy_298K_au,Enthalphy_298K_au,GibbsFreeEnergy_298K_au,Heatcapacity_Cv_cal_mol_K\n"
    '"dsgdb9nsd_000001.xyz",1,"C","InChI=1S/CH4/h1H4",5,"[4,1,0,0,0]","[\'C\',\'H\',\'H\',\'H\',\'H\']",'
    '"[[-0.0126981359,1.0858041578,0.0080009958],[0.002150416,-0.0060313176,0.0019761204],[1.0117308433,1.4637511618,0.0002765748],'
    '[-0.540815069,1.4475266138,-0.8766437152],[-0.5238136345,1.4379326443,0.9063972942]]",'
    '"[-0.535689,0.133921,0.133922,0.133923,0.133923]",'
    '"[1341.307,1341.3284,1341.365,1562.6731,1562.7453,3038.3205,3151.6034,3151.6788,3151.7078]",'
    "157.7118,157.70997,157.70699,0.,13.21,-0.3877,0.1171,0.5048,35.3641,0.044749,-40.47893,-40.476062,-40.475117,-40.498597,6.469\n"
)
UNCHARACTERIZED = """ List of 3054 molecules which failed the geometry consistency check
 (the header of the published file spans several lines)

   Index   GDB-17 SMILES     relaxed SMILES
 ----------------------------------------------
     2     N                 N
 ----------------------------------------------
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EQBENCH_CACHE", str(tmp_path / "cache"))


def molecule_text(index: int, atoms: int = 5) -> str:
    """Methane's file with another index, shifted coordinates and (atoms < 5) fewer hydrogens."""
    lines = METHANE.splitlines()
    lines[0] = str(atoms)
    lines[1] = lines[1].replace("gdb 1\t", f"gdb {index}\t").replace("-0.3877", f"{-0.3 - index / 100:.4f}")
    atom_lines = [line.replace("1.4", f"{1.4 + index / 10:.1f}") for line in lines[2:2 + atoms]]
    return "\n".join(lines[:2] + atom_lines + lines[7:]) + "\n"


@pytest.fixture
def xyz_folder(tmp_path) -> Path:
    folder = tmp_path / "xyz"
    folder.mkdir()
    for index, atoms in ((1, 5), (2, 4), (3, 5), (4, 3)):
        (folder / f"dsgdb9nsd_{index:06d}.xyz").write_text(molecule_text(index, atoms))
    (folder / qm9.UNCHARACTERIZED_FILE).write_text(UNCHARACTERIZED)
    return folder


def test_raw_file_is_parsed_with_mathematica_exponents():
    molecule = qm9.parse_xyz(METHANE, "dsgdb9nsd_000001.xyz")
    assert molecule.index == 1 and molecule.symbols == ("C", "H", "H", "H", "H")
    np.testing.assert_allclose(molecule.properties, PROPERTY_VALUES)
    assert molecule.positions.shape == (5, 3)
    assert molecule.positions[2, 2] == pytest.approx(2.765748e-4)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: ls[:9], r"m\.xyz:10: expected the InChI strings, found the end of the file \(truncated\?\)"),
        (lambda ls: ls[:5], r"m\.xyz:6: expected atom 4 of 5: '<element> x y z <charge>', found the end of the file"),
        (lambda ls: ["five"] + ls[1:], r"m\.xyz:1: expected the number of atoms \(a positive integer\), got 'five'"),
        (lambda ls: ls[:1] + [ls[1].rsplit("\t", 2)[0]] + ls[2:], r"m\.xyz:2: expected 'gdb <index>' and 15 properties"),
        (lambda ls: ls[:3] + [ls[3].replace("H", "Xe")] + ls[4:], r"m\.xyz:4: expected an element among \['C', 'F', 'H', 'N', 'O'\], got 'Xe'"),
        (lambda ls: ls[:4] + [ls[4].replace("*^-4", "*^x")] + ls[5:], r"m\.xyz:5: expected a number for z, got '2\.765748\*\^x'"),
        (lambda ls: ls[:2] + [ls[2] + "\t7"] + ls[3:], r"m\.xyz:3: expected atom 1 of 5 as '<element> x y z <charge>', got 6 fields"),
    ],
)
def test_malformed_raw_files_name_the_file_line_and_expectation(edit, message):
    with pytest.raises(DataFileError, match=message):
        qm9.parse_xyz("\n".join(edit(METHANE.splitlines())), "m.xyz")


def test_uncharacterized_list_is_read_from_the_published_layout(tmp_path):
    path = tmp_path / "uncharacterized.txt"
    path.write_text(UNCHARACTERIZED)
    assert qm9.read_uncharacterized(path) == {2}
    path.write_text("header only\n")
    with pytest.raises(DataFileError, match="no molecule indices"):
        qm9.read_uncharacterized(path)


def test_folder_loading_excludes_uncharacterized_and_pads(xyz_folder):
    arrays = qm9.load_qm9(xyz_folder)
    assert arrays["index"].tolist() == [1, 3, 4]
    assert arrays["atomic_numbers"].shape == (3, 5) and arrays["positions"].shape == (3, 5, 3)
    assert arrays["atomic_numbers"][2].tolist() == [6, 1, 1, 0, 0]
    assert (arrays["positions"][2, 3:] == 0).all()
    kept = qm9.load_qm9(xyz_folder, exclude=False)
    assert kept["index"].tolist() == [1, 2, 3, 4]


def test_raw_sources_need_the_uncharacterized_list(xyz_folder):
    (xyz_folder / qm9.UNCHARACTERIZED_FILE).unlink()
    with pytest.raises(DataFileError, match=r"uncharacterized\.txt: list of the 3,054 uncharacterized molecules not found"):
        qm9.load_qm9(xyz_folder)


def test_tar_archive_gives_the_same_arrays_as_the_folder(xyz_folder, tmp_path):
    archive = tmp_path / "dsgdb9nsd.xyz.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        for path in sorted(xyz_folder.glob("*.xyz")):
            tar.add(path, arcname=path.name)
    from_archive = qm9.load_qm9(archive, xyz_folder / qm9.UNCHARACTERIZED_FILE)
    from_folder = qm9.load_qm9(xyz_folder)
    for name in from_folder:
        np.testing.assert_array_equal(from_archive[name], from_folder[name])


def test_a_malformed_file_in_a_folder_is_named(xyz_folder):
    (xyz_folder / "dsgdb9nsd_000003.xyz").write_text("\n".join(METHANE.splitlines()[:4]))
    with pytest.raises(DataFileError, match=r"dsgdb9nsd_000003\.xyz:5: expected atom 3 of 5"):
        qm9.load_qm9(xyz_folder)


def qm9pack_row(molecule: qm9.Molecule) -> dict[str, str]:
    row = {
        "XYZ_file": f"dsgdb9nsd_{molecule.index:06d}.xyz",
        "Index": str(molecule.index),
        "N_atoms": str(len(molecule.symbols)),
        "Elements": "[" + ",".join(f"'{s}'" for s in molecule.symbols) + "]",
        "XYZ_Ang": "[" + ",".join("[" + ",".join(repr(float(v)) for v in atom) + "]" for atom in molecule.positions) + "]",
    }
    row.update({column: repr(float(value)) for column, value in zip(qm9.QM9PACK_COLUMNS.values(), molecule.properties)})
    return row


def write_qm9pack_csvs(folder: Path, molecules: list[qm9.Molecule]) -> None:
    folder.mkdir(exist_ok=True)
    for part, name in enumerate(qm9.QM9PACK_CSVS):
        rows = [qm9pack_row(m) for m in molecules[part::3]]
        with (folder / name).open("w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(qm9pack_row(molecules[0])), quoting=csv.QUOTE_NONNUMERIC)
            writer.writeheader()
            writer.writerows(rows)


def test_qm9pack_csvs_from_a_folder_and_a_wheel_match_the_raw_files(xyz_folder, tmp_path):
    molecules = [qm9.parse_xyz(p.read_text(), p) for p in sorted(xyz_folder.glob("*.xyz")) if "000002" not in p.name]
    write_qm9pack_csvs(tmp_path / "csv", molecules)
    wheel = tmp_path / "qm9pack-1.0.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in qm9.QM9PACK_CSVS:
            archive.write(tmp_path / "csv" / name, f"qm9pack/data/{name}")
    raw = qm9.load_qm9(xyz_folder)
    for source in (tmp_path / "csv", wheel):
        arrays = qm9.load_qm9(source)
        np.testing.assert_array_equal(arrays["index"], raw["index"])
        np.testing.assert_array_equal(arrays["atomic_numbers"], raw["atomic_numbers"])
        np.testing.assert_allclose(arrays["positions"], raw["positions"])
        np.testing.assert_allclose(arrays["properties"], raw["properties"])


def test_the_published_qm9pack_layout_matches_the_raw_file():
    (from_csv,) = qm9.iter_qm9pack_csv(io.StringIO(QM9PACK_PART1_HEAD), "qm9_part1.csv")
    raw = qm9.parse_xyz(METHANE, "dsgdb9nsd_000001.xyz")
    assert (from_csv.index, from_csv.symbols) == (raw.index, raw.symbols) == (1, ("C", "H", "H", "H", "H"))
    np.testing.assert_allclose(from_csv.positions, raw.positions, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(from_csv.properties, PROPERTY_VALUES)


def test_malformed_qm9pack_rows_name_the_file_and_line(tmp_path):
    molecule = qm9.parse_xyz(METHANE, "m.xyz")
    row = qm9pack_row(molecule)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(row), quoting=csv.QUOTE_NONNUMERIC)
    writer.writeheader()
    writer.writerow(row)
    writer.writerow({**row, "N_atoms": "4"})
    with pytest.raises(DataFileError, match=r"part\.csv:3: expected N_atoms \(4\) elements and 3 coordinates each, got 5 elements"):
        list(qm9.iter_qm9pack_csv(io.StringIO(text.getvalue()), "part.csv"))
    with pytest.raises(DataFileError, match=r"part\.csv:1: expected a qm9pack CSV header with the columns \['Index'"):
        list(qm9.iter_qm9pack_csv(io.StringIO("a,b\n1,2\n"), "part.csv"))


def test_targets_units_and_atom_references():
    molecule = qm9.parse_xyz(METHANE, "m.xyz")
    arrays = qm9.pad_molecules([molecule], "m.xyz")
    assert qm9.target_values(arrays, "homo")[0] == pytest.approx(-0.3877 * 27.211386245988)
    atomisation = -40.47893 - (-37.846772 + 4 * -0.500273)  # U0 minus the atoms' reference energies (Hartree)
    assert qm9.target_values(arrays, "U0")[0] == pytest.approx(atomisation * qm9.HARTREE_TO_EV)
    assert qm9.target_values(arrays, "mu")[0] == 0.0
    assert qm9.TARGETS["homo"].report_unit == "meV" and qm9.TARGETS["homo"].report_factor == 1000.0
    with pytest.raises(ValueError, match="unknown QM9 target 'homos'"):
        qm9.target_values(arrays, "homos")


def test_the_usual_split_and_its_proportional_version():
    split = qm9.split_indices(qm9.NUM_MOLECULES, seed=0)
    assert {k: len(v) for k, v in split.items()} == {"train": 100_000, "valid": 17_748, "test": 13_083}
    assert len(np.unique(np.concatenate(list(split.values())))) == qm9.NUM_MOLECULES
    np.testing.assert_array_equal(qm9.split_indices(1000, seed=5)["test"], qm9.split_indices(1000, seed=5)["test"])
    small = qm9.split_indices(1000, seed=5)
    assert {k: len(v) for k, v in small.items()} == {"train": 764, "valid": 136, "test": 100}
    assert not np.array_equal(small["test"], qm9.split_indices(1000, seed=6)["test"])


def test_molecule_tensors_mask_the_padding(xyz_folder):
    arrays = qm9.load_qm9(xyz_folder)
    tensors = qm9.molecule_tensors(arrays, "homo", np.array([2, 0]))
    assert tensors["mask"].tolist() == [[True, True, True, False, False], [True] * 5]
    assert tensors["charges"][0].tolist() == [6, 1, 1, 0, 0]
    assert tensors["target"].tolist() == pytest.approx([-0.34 * qm9.HARTREE_TO_EV, -0.31 * qm9.HARTREE_TO_EV], rel=1e-6)
