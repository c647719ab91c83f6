"""Readers of the real datasets, on tiny fixtures in each exact on-disk format with the real
releases' defects (tests/fixtures_real.py)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

import fixtures_real as fx
from mtlface.data.manifest import empty_manifest
from mtlface.data.readers import (
    READERS,
    AdienceReader,
    CKPlusReader,
    CSVManifestReader,
    FER2013Reader,
    Genki4KReader,
    IMDBWikiReader,
    UTKFaceReader,
    read_source,
    seeded_split,
)
from mtlface.data.readers.imdb_wiki import age_mid_year

MISSING = "image file missing (row dropped)"


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every dataset written once (readers never modify their input)."""
    base = tmp_path_factory.mktemp("real")
    return {
        "utkface": fx.write_utkface(base / "utk"),
        "imdb_wiki": fx.write_imdb_wiki(base / "imdb_wiki"),
        "genki4k": fx.write_genki4k(base / "genki"),
        "adience": fx.write_adience(base / "adience"),
        "fer2013": fx.write_fer2013(base / "fer"),
        "ckplus": fx.write_ckplus(base / "ckplus"),
    }


def check_manifest_dtypes(df: pd.DataFrame) -> None:
    """The manifest columns come first, with the dtypes ``read_manifest`` gives."""
    expected = empty_manifest()
    assert list(df.columns[: len(expected.columns)]) == list(expected.columns)
    for col in ("age", "gender", "smile", "emotion", "race"):
        assert df[col].dtype == expected[col].dtype, col
    assert set(df["split"]) <= {"train", "val", "test"}


def by_name(df: pd.DataFrame) -> pd.DataFrame:
    return df.set_index(df["path"].map(lambda p: Path(p).name))


def assert_grouped(df: pd.DataFrame, group: str) -> None:
    """Each group in one split, and the split is not trivial."""
    assert (df.groupby(group)["split"].nunique() == 1).all()
    assert set(df["split"]) == {"train", "val", "test"}


# ----------------------------------------------------------------------------------- shared


def test_seeded_split_reproducible_grouped_and_order_free() -> None:
    keys = [f"person{i // 3}" for i in range(300)]  # 100 people, 3 rows each
    a = seeded_split(keys, 0.2, 0.1, seed=7)
    assert (a == seeded_split(keys, 0.2, 0.1, seed=7)).all()
    assert (a != seeded_split(keys, 0.2, 0.1, seed=8)).any()
    counts = pd.Series(a).value_counts()
    assert abs(counts["val"] - 60) <= 3 and abs(counts["test"] - 30) <= 3
    df = pd.DataFrame({"key": keys, "split": a})
    assert (df.groupby("key")["split"].nunique() == 1).all()
    # the same rows listed in another order get the same splits
    order = np.random.default_rng(0).permutation(300)
    assert (seeded_split([keys[i] for i in order], 0.2, 0.1, seed=7) == a[order]).all()


def test_seeded_split_missing_key_is_its_own_group() -> None:
    split = seeded_split([None] * 100, 0.3, 0.3, seed=0)
    assert set(split) == {"train", "val", "test"}


def test_split_fractions_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sum below 1"):
        UTKFaceReader(tmp_path, val_fraction=0.5, test_fraction=0.5)


def test_read_source_and_registry(roots: dict[str, Path]) -> None:
    assert set(READERS) == {"utkface", "imdb_wiki", "genki4k", "adience", "fer2013", "ckplus",
                            "csv", "celeba", "fairface", "rafdb", "affectnet", "agedb"}
    via_name = read_source("adience", roots["adience"], test_fold=2)
    direct = AdienceReader(roots["adience"], test_fold=2).read()
    pd.testing.assert_frame_equal(via_name, direct)
    with pytest.raises(KeyError, match="known"):
        read_source("lfw", roots["adience"])


def test_hydra_instantiates_a_reader(roots: dict[str, Path]) -> None:
    reader = instantiate({"_target_": "mtlface.data.readers.IMDBWikiReader",
                          "root": str(roots["imdb_wiki"]), "parts": ["wiki"], "seed": 3,
                          "source": "wiki"})
    df = reader.read()
    assert set(df["part"]) == {"wiki"} and set(df["source"]) == {"wiki"}


@pytest.mark.parametrize("reader", [UTKFaceReader, IMDBWikiReader, Genki4KReader, AdienceReader,
                                    FER2013Reader, CKPlusReader, CSVManifestReader])
def test_missing_root_says_what_to_download(reader: type, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        reader(tmp_path / "nowhere").read()
    message = str(err.value)
    assert reader.title in message and str(tmp_path / "nowhere") in message
    assert "Download" in message or reader is CSVManifestReader


@pytest.mark.parametrize("name, remove, expected", [
    ("imdb_wiki", "wiki_crop/wiki.mat", "wiki.mat"),
    ("genki4k", "labels.txt", "labels.txt"),
    ("adience", "fold_3_data.txt", "fold_3_data.txt"),
    ("fer2013", "fer2013.csv", "fer2013.csv"),
])
def test_missing_required_file(name: str, remove: str, expected: str, tmp_path: Path) -> None:
    writer = {"imdb_wiki": fx.write_imdb_wiki, "genki4k": fx.write_genki4k,
              "adience": fx.write_adience, "fer2013": fx.write_fer2013}[name]
    root = writer(tmp_path / name)
    (root / remove).unlink()
    with pytest.raises(FileNotFoundError, match=expected) as err:
        read_source(name, root)
    assert "Download" in str(err.value)


def test_empty_folder_is_an_error_not_an_empty_table(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no UTKFace images"):
        UTKFaceReader(tmp_path).read()
    (tmp_path / "cohn-kanade-images").mkdir()
    (tmp_path / "Emotion").mkdir()
    with pytest.raises(FileNotFoundError, match="no sequences"):
        CKPlusReader(tmp_path).read()


def test_skips_are_logged(roots: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        Genki4KReader(roots["genki4k"]).read()
    assert "GENKI-4K: skipped 1 (smile not 0/1 (row dropped))" in caplog.text


# ---------------------------------------------------------------------------------- UTKFace


def test_utkface(roots: dict[str, Path]) -> None:
    df = UTKFaceReader(roots["utkface"]).read()
    check_manifest_dtypes(df)
    assert len(df) == len(fx.UTK_GOOD)
    rows = by_name(df)
    for name, (age, gender, race) in fx.UTK_GOOD.items():
        assert (rows.loc[name, "age"], rows.loc[name, "gender"], rows.loc[name, "race"]) == (
            age, gender, race)
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in df["path"])
    assert (df["source"] == "utkface").all() and df["smile"].isna().all()
    expected = pd.Series(fx.UTK_BAD).value_counts().to_dict()
    assert df.attrs["skipped"] == expected
    assert set(df["split"]) == {"train", "val", "test"}


def test_utkface_split_reproducible_and_configurable(roots: dict[str, Path]) -> None:
    a = UTKFaceReader(roots["utkface"], seed=1).read()
    b = UTKFaceReader(roots["utkface"], seed=1).read()
    c = UTKFaceReader(roots["utkface"], seed=2).read()
    assert (a["split"] == b["split"]).all() and (a["split"] != c["split"]).any()
    half = UTKFaceReader(roots["utkface"], val_fraction=0.25, test_fraction=0.25).read()
    assert half["split"].value_counts().to_dict() == {"train": 20, "val": 10, "test": 10}


# -------------------------------------------------------------------------------- IMDB-WIKI


def test_age_mid_year() -> None:
    assert age_mid_year(fx.datenum(1980, 7, 1), 2010) == 30  # birthday on 1 July: has it
    assert age_mid_year(fx.datenum(1980, 7, 2), 2010) == 29
    assert math.isnan(age_mid_year(0.0, 2010)) and math.isnan(age_mid_year(np.nan, 2010))


def test_imdb_wiki(roots: dict[str, Path]) -> None:
    df = IMDBWikiReader(roots["imdb_wiki"]).read()
    check_manifest_dtypes(df)
    rows = by_name(df)
    # gender inverted from the file (1 male -> 0), NaN stays missing
    assert (rows.loc["nm01_a.jpg", "age"], rows.loc["nm01_a.jpg", "gender"]) == (30, 0)
    assert (rows.loc["nm01_b.jpg", "age"], rows.loc["nm01_b.jpg", "gender"]) == (29, 1)
    assert rows.loc["nm02_a.jpg", "age"] == 30 and pd.isna(rows.loc["nm02_a.jpg", "gender"])
    assert (rows.loc["w1.jpg", "age"], rows.loc["w1.jpg", "gender"]) == (30, 1)
    assert (rows.loc["w2.jpg", "age"], rows.loc["w2.jpg", "gender"]) == (29, 0)
    assert rows.loc["nm06_a.jpg", "age"] == 51
    assert rows.loc["nm01_a.jpg", ["box_x1", "box_y1", "box_x2", "box_y2"]].tolist() == [
        10, 20, 110, 120]
    assert rows.loc["nm01_a.jpg", "face_score"] == 3.5
    assert rows.loc["nm01_a.jpg", "celeb_id"] == 1 and pd.isna(rows.loc["w1.jpg", "celeb_id"])
    assert rows.loc["w1.jpg", "part"] == "wiki" and rows.loc["nm01_a.jpg", "part"] == "imdb"
    assert df["path"].str.startswith(str(roots["imdb_wiki"] / "imdb_crop" / "01")).sum() == 2
    assert df.attrs["skipped"] == {
        "dob or photo_taken not a valid date (row dropped)": 1,
        "no face found, face_score -inf (row dropped)": 1,
        "face_score below 1 (row dropped)": 1,
        "second face with score above 0 (row dropped)": 1,
        "age not in [0, 100] (row dropped)": 2,
        MISSING: 1,
        "gender NaN (label missing)": 1,
    }
    assert len(df) == len(fx.IMDB_ENTRIES) + len(fx.WIKI_ENTRIES) - 7
    # grouped by person, across IMDb and Wikipedia
    assert_grouped(df[df["name"] != ""], "name")
    assert rows.loc["w1.jpg", "split"] == rows.loc["nm01_a.jpg", "split"]


def test_imdb_wiki_filters_are_options(roots: dict[str, Path]) -> None:
    df = IMDBWikiReader(roots["imdb_wiki"], parts=["imdb"], min_face_score=-np.inf,
                        max_second_face_score=None, min_age=-10, max_age=200).read()
    names = set(by_name(df).index)
    assert {"nm02_b.jpg", "nm03_a.jpg", "nm03_b.jpg", "nm04_a.jpg", "nm04_b.jpg"} <= names
    # an age the manifest cannot hold (-2) keeps its row but is blanked by clean_labels
    assert pd.isna(by_name(df).loc["nm04_a.jpg", "age"])
    assert by_name(df).loc["nm04_b.jpg", "age"] == 120
    assert df.attrs["skipped"]["age outside [0, 120] (label blanked)"] == 1
    assert set(df["part"]) == {"imdb"}
    assert "no face found, face_score -inf (row dropped)" not in df.attrs["skipped"]


# --------------------------------------------------------------------------------- GENKI-4K


def test_genki4k(roots: dict[str, Path]) -> None:
    df = Genki4KReader(roots["genki4k"]).read()
    check_manifest_dtypes(df)
    rows = by_name(df)
    assert len(df) == 25
    assert rows.loc["file0001.jpg", ["smile", "yaw", "pitch", "roll"]].tolist() == [
        1, -0.021162, 0.059530, -0.039662]
    assert rows.loc["file0002.jpg", "smile"] == 0
    assert not {"file0003.jpg", "file0006.jpg", "file0007.jpg", "file0031.jpg"} & set(rows.index)
    assert df.attrs["skipped"] == {
        "label line is not 4 numbers (row dropped)": 3,
        "smile not 0/1 (row dropped)": 1,
        MISSING: 1,
        "image without a label line (row dropped)": 1,
    }
    again = Genki4KReader(roots["genki4k"]).read()
    assert (again["split"] == df["split"]).all() and set(df["split"]) == {"train", "val", "test"}


# ---------------------------------------------------------------------------------- Adience


def test_adience(roots: dict[str, Path]) -> None:
    df = AdienceReader(roots["adience"]).read()
    check_manifest_dtypes(df)
    rows = df.set_index("face_id")
    expected = {  # face_id: (age, age_group, gender)
        "1": (28.5, 4, 1), "2": (1.0, 0, 0), "3": (15.5, 3, None), "4": (None, None, None),
        "5": (29.5, 4, 0), "6": (35.0, 4, 1), "7": (3.0, 0, 0), "8": (40.0, 5, 1),
        "9": (43.0, 5, 0), "10": (None, None, 1), "11": (80.0, 7, 0), "12": (5.0, 1, 1),
        "13": (17.5, 3, None), "14": (50.5, 6, 0), "15": (10.0, 2, 1),
    }
    assert set(rows.index) == set(expected)
    for face_id, values in expected.items():
        got = tuple(None if pd.isna(v) else v
                    for v in rows.loc[face_id, ["age", "age_group", "gender"]])
        assert got == values, face_id
    assert df.attrs["skipped"] == {
        "fold_0_data.txt: line has too few fields (row dropped)": 1,
        MISSING: 1,
        "age None or empty (label missing)": 2,
        "gender u or empty (label missing)": 2,
        "gender not m/f/u (label blanked)": 1,
    }
    # fold 0 test, the next one val, the rest train
    assert (df["split"] == df["fold"].map({0: "test", 1: "val"}).fillna("train")).all()
    assert rows.loc["1", "path"] == str(fx.adience_image(
        roots["adience"], "aligned", "30601258@N03", "1", "10399646885_67c7d20df9_o.jpg"))
    assert rows.loc["1", "user_id"] == "30601258@N03"


def test_adience_folds_and_layout(roots: dict[str, Path]) -> None:
    df = AdienceReader(roots["adience"], test_fold=4, val_fold=2, images="faces").read()
    assert df.groupby("fold")["split"].first().to_dict() == {
        0: "train", 1: "train", 2: "val", 3: "train", 4: "test"}
    assert df["path"].str.contains("/faces/.*/coarse_tilt_aligned_face\\.", regex=True).all()
    assert (AdienceReader(roots["adience"], test_fold=4).read().query("fold == 0")["split"]
            == "val").all()  # the next fold wraps around
    with pytest.raises(ValueError, match="different folds"):
        AdienceReader(roots["adience"], test_fold=1, val_fold=1)


# ---------------------------------------------------------------------------------- FER2013


def test_fer2013(roots: dict[str, Path]) -> None:
    df = FER2013Reader(roots["fer2013"]).read()
    check_manifest_dtypes(df)
    csv = roots["fer2013"] / "fer2013.csv"
    assert df["path"].tolist() == [f"{csv}#{i}" for i in (0, 1, 2, 9)]
    assert df["emotion"].tolist() == [0, 3, 6, 4]
    assert df["split"].tolist() == ["train", "val", "test", "train"]
    assert df.attrs["skipped"] == {
        "pixels not 2304 values in 0..255 (row dropped)": 3,
        "emotion not 0..6 (row dropped)": 1,
        "Usage not one of Training/PublicTest/PrivateTest (row dropped)": 1,
        "fer2013.csv: line has too few fields (row dropped)": 1,
    }
    image = FER2013Reader.load_image(df["path"][3])
    assert image.dtype == np.uint8 and image.shape == (48, 48)
    assert (image == fx.fer_pixels(9)).all()
    with pytest.raises(KeyError, match="skipped"):
        FER2013Reader.load_image(f"{csv}#3")


def test_fer2013_export(roots: dict[str, Path], tmp_path: Path) -> None:
    df = FER2013Reader(roots["fer2013"], export_dir=tmp_path / "png").read()
    assert df["path"].tolist() == [str(tmp_path / "png" / f"{i}.png") for i in (0, 1, 2, 9)]
    for path, row in zip(df["path"], df["row"]):
        assert (cv2.imread(path, cv2.IMREAD_GRAYSCALE) == fx.fer_pixels(row)).all()


# -------------------------------------------------------------------------------------- CK+


def test_ckplus(roots: dict[str, Path]) -> None:
    df = CKPlusReader(roots["ckplus"]).read()
    check_manifest_dtypes(df)

    def seq(subject: str, sequence: str) -> pd.DataFrame:
        return df[(df["subject"] == subject) & (df["sequence"] == sequence)]

    neutral, anger, disgust, fear, happy, sad, surprise = 6, 0, 1, 2, 3, 4, 5
    s005 = seq("S005", "001")
    assert s005["frame"].tolist() == [1, 9, 10, 11]
    assert s005["emotion"].tolist() == [neutral, disgust, disgust, disgust]
    contempt = seq("S010", "001")
    assert contempt["frame"].tolist() == [1, 3, 4, 5]
    assert contempt["emotion"].iloc[0] == neutral and contempt["emotion"].iloc[1:].isna().all()
    assert seq("S010", "002")["emotion"].tolist() == [neutral, happy, happy, happy]
    assert seq("S011", "001")["emotion"].tolist() == [sad, sad]  # frame 1 is a peak frame
    assert seq("S026", "001")["emotion"].tolist() == [neutral, surprise, surprise, surprise]
    assert seq("S026", "002")["emotion"].iloc[-1] == anger
    assert seq("S026", "003")["emotion"].iloc[-1] == fear
    assert seq("S005", "002").empty and seq("S022", "001").empty
    assert len(df) == 186
    assert df.attrs["skipped"] == {
        "contempt has no FER2013 class (label blanked)": 3,
        "sequence without an emotion file (sequence skipped)": 1,
        "emotion file not a code 0..7 (sequence skipped)": 1,
        "emotion file without an image sequence (sequence skipped)": 1,
    }
    assert_grouped(df, "subject")


def test_ckplus_options(roots: dict[str, Path]) -> None:
    dropped = CKPlusReader(roots["ckplus"], contempt="drop", last_frames=1,
                           first_frame_neutral=False).read()
    s010 = dropped[dropped["subject"] == "S010"]
    assert s010["frame"].tolist() == [5] and s010["emotion"].tolist() == [3]  # happy only
    assert dropped.attrs["skipped"]["contempt has no FER2013 class (row dropped)"] == 1
    merged = CKPlusReader(roots["ckplus"], contempt="disgust").read()
    assert merged.query("subject == 'S010' and sequence == '001'")["emotion"].tolist() == [
        6, 1, 1, 1]
    with pytest.raises(ValueError, match="contempt"):
        CKPlusReader(roots["ckplus"], contempt="ignore")


# ------------------------------------------------------------------------------ CSV manifest


def test_csv_manifest(tmp_path: Path) -> None:
    fx.touch_image(tmp_path / "imgs" / "a.jpg")
    fx.touch_image(tmp_path / "imgs" / "b.jpg")
    elsewhere = fx.touch_image(tmp_path / "other" / "c.jpg")
    people = [f"p{i // 2}" for i in range(40)]
    for i in range(40):
        fx.touch_image(tmp_path / "imgs" / f"g{i}.jpg")
    csv = tmp_path / "labels" / "faces.csv"
    csv.parent.mkdir()
    csv.write_text("\n".join([
        "path,age,gender,emotion,person",
        "../imgs/a.jpg,31.5,1,,p100",  # relative to the CSV's folder; blank = missing
        f"{elsewhere},,0,3,p101",  # absolute
        "../imgs/b.jpg,40,7,,p102",  # invalid gender: blanked, counted
        "../imgs/none.jpg,20,0,,p103",  # missing file
        ",20,0,,p104",  # no path
        *(f"../imgs/g{i}.jpg,{20 + i},{i % 2},,{people[i]}" for i in range(40)),
    ]) + "\n")
    df = CSVManifestReader(csv, group_column="person", source="mine").read()
    check_manifest_dtypes(df)
    rows = by_name(df)
    assert rows.loc["a.jpg", "path"] == str(tmp_path / "imgs" / "a.jpg")
    assert (rows.loc["a.jpg", "age"], rows.loc["a.jpg", "gender"]) == (31.5, 1)
    assert pd.isna(rows.loc["a.jpg", "emotion"]) and rows.loc["c.jpg", "emotion"] == 3
    assert pd.isna(rows.loc["c.jpg", "age"]) and pd.isna(rows.loc["b.jpg", "gender"])
    assert (df["source"] == "mine").all() and len(df) == 43
    assert df.attrs["skipped"] == {MISSING: 1, "path empty (row dropped)": 1,
                                   "gender not in 0..1 (label blanked)": 1}
    assert_grouped(df, "person")


def test_csv_manifest_with_split_column(tmp_path: Path) -> None:
    fx.touch_image(tmp_path / "a.jpg")
    fx.touch_image(tmp_path / "b.jpg")
    csv = tmp_path / "m.csv"
    csv.write_text("path,smile,split\na.jpg,1,test\nb.jpg,0,holdout\n")
    df = CSVManifestReader(csv).read()
    assert df[["smile", "split"]].values.tolist() == [[1, "test"]]
    assert df.attrs["skipped"] == {"split not one of train/val/test (row dropped)": 1}
