"""Readers of today's benchmarks (CelebA, FairFace, RAF-DB, AffectNet, AgeDB) on tiny fixtures in
each exact shipped format with the real files' defects (tests/fixtures_benchmarks.py): label
mapping, splits, counted skips by reason, the registry, the Hydra configs, and a run of the
preprocessing stage with detector=none."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

import fixtures_benchmarks as fb
from conftest import compose_train
from mtlface.data.manifest import empty_manifest, read_manifest
from mtlface.data.preprocess import run
from mtlface.data.readers import (
    READERS,
    AffectNetReader,
    AgeDBReader,
    CelebAReader,
    FairFaceReader,
    RAFDBReader,
    read_source,
)
from mtlface.train import run as train

# The configs of this checkout (not the installed package's).
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
MISSING = "image file missing (row dropped)"
WRITERS = {"celeba": fb.write_celeba, "fairface": fb.write_fairface, "rafdb": fb.write_rafdb,
           "affectnet": fb.write_affectnet, "agedb": fb.write_agedb}
CLASSES = {"celeba": CelebAReader, "fairface": FairFaceReader, "rafdb": RAFDBReader,
           "affectnet": AffectNetReader, "agedb": AgeDBReader}


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every dataset written once (readers never modify their input)."""
    base = tmp_path_factory.mktemp("benchmarks")
    return {name: write(base / name) for name, write in WRITERS.items()}


def by_name(df: pd.DataFrame) -> pd.DataFrame:
    return df.set_index(df["path"].map(lambda p: Path(p).name))


def check_manifest_dtypes(df: pd.DataFrame) -> None:
    expected = empty_manifest()
    assert list(df.columns[: len(expected.columns)]) == list(expected.columns)
    for col in ("age", "gender", "smile", "emotion", "race"):
        assert df[col].dtype == expected[col].dtype, col
    assert set(df["split"]) <= {"train", "val", "test"}


# ---------------------------------------------------------------------------- registry


def test_registered_and_read_source_matches_the_class(roots: dict[str, Path]) -> None:
    for name, cls in CLASSES.items():
        assert READERS[name] is cls
        pd.testing.assert_frame_equal(read_source(name, roots[name]), cls(roots[name]).read())


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_missing_root_says_what_to_download(name: str, tmp_path: Path) -> None:
    cls = CLASSES[name]
    with pytest.raises(FileNotFoundError) as err:
        cls(tmp_path / "nowhere").read()
    message = str(err.value)
    assert cls.title in message and str(tmp_path / "nowhere") in message
    assert "Download" in message or "Request" in message


@pytest.mark.parametrize("name, remove", [
    ("celeba", "list_eval_partition.txt"),
    ("fairface", "fairface_label_val.csv"),
    ("rafdb", "EmoLabel/list_patition_label.txt"),
    ("affectnet", "Manually_Annotated_file_lists/validation.csv"),
])
def test_missing_required_file(name: str, remove: str, tmp_path: Path) -> None:
    root = WRITERS[name](tmp_path / name)
    (root / remove).unlink()
    with pytest.raises(FileNotFoundError, match=Path(remove).name):
        read_source(name, root)


def test_skips_are_logged(roots: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        read_source("rafdb", roots["rafdb"])
    assert "RAF-DB: skipped 1 (list_patition_label.txt: label not 1..7 (row dropped))" \
        in caplog.text


# ------------------------------------------------------------------------------ CelebA


@pytest.mark.parametrize("crlf", [True, False])
def test_celeba(crlf: bool, tmp_path: Path) -> None:
    df = read_source("celeba", fb.write_celeba(tmp_path / "celeba", crlf=crlf))
    check_manifest_dtypes(df)
    assert len(df) == fb.CELEBA_GOOD and df["path"].is_unique
    rows = by_name(df)
    columns = [a.lower() for a in fb.CELEBA_ATTRS]
    assert {"5_o_clock_shadow", "eyeglasses", "no_beard", "male", "smiling"} <= set(columns)
    for i in range(1, fb.CELEBA_GOOD + 1):
        row = rows.loc[f"{i:06d}.jpg"]
        values = fb.celeba_values(i)
        assert row["gender"] == (0 if values[fb.MALE] == 1 else 1)  # Male 1 -> male 0
        assert row["smile"] == (values[fb.SMILING] == 1)
        assert row["split"] == ("train", "val", "test")[i % 3]
        for j, column in enumerate(columns):
            if (f"{i:06d}.jpg", fb.CELEBA_ATTRS[j]) == fb.CELEBA_ZERO:
                assert pd.isna(row[column])  # a 0 is no -1/1 label: blanked
            else:
                assert row[column] == (values[j] == 1), (i, column)
    for column in columns:
        assert df[column].dtype == "Int64"
    assert rows.loc["000001.jpg", "identity"] == 2880 and df["identity"].dtype == "Int64"
    assert rows.loc["000002.jpg", "bbox_x_1"] == 96 and rows.loc["000002.jpg", "nose_y"] == 142
    assert "box_x1" not in df  # the boxes belong to the in-the-wild images: never cropped at
    assert df.attrs["skipped"] == {
        **{reason: 1 for reason in fb.CELEBA_BAD.values()},
        "list_attr_celeba.txt: attribute value not -1/1 (label blanked)": 1,
        "list_attr_celeba.txt: image listed twice (row dropped)": 1,
        "list_attr_celeba.txt: fewer rows than its count line says (rows missing)": 1,
        "list_eval_partition.txt: image without an attribute row (row dropped)": 1,
    }


def test_celeba_without_the_optional_files(roots: dict[str, Path], tmp_path: Path) -> None:
    root = fb.write_celeba(tmp_path / "celeba")
    for name in ("identity_CelebA.txt", "list_bbox_celeba.txt",
                 "list_landmarks_align_celeba.txt"):
        (root / name).unlink()
    df = read_source("celeba", root)
    assert len(df) == fb.CELEBA_GOOD and not {"identity", "bbox_x_1", "nose_x"} & set(df)
    no_extras = read_source("celeba", roots["celeba"], extras=False)
    assert "identity" not in no_extras and len(no_extras) == fb.CELEBA_GOOD


def test_celeba_bad_count_line_is_a_clear_error(tmp_path: Path) -> None:
    root = fb.write_celeba(tmp_path / "celeba")
    attr = root / "list_attr_celeba.txt"
    attr.write_text("\n".join(attr.read_text().splitlines()[1:]))
    with pytest.raises(ValueError, match="count line"):
        read_source("celeba", root)


# ---------------------------------------------------------------------------- FairFace


def test_fairface(roots: dict[str, Path]) -> None:
    df = read_source("fairface", roots["fairface"])
    check_manifest_dtypes(df)
    good = fb.FAIRFACE_TRAIN + fb.FAIRFACE_VAL
    assert len(df) == good + 3  # 3 bad-label rows stay, their other labels intact
    rows = df.set_index("file")
    ages = (1.0, 6.0, 14.5, 24.5, 34.5, 44.5, 54.5, 64.5, 75.0)
    utk = (0, 1, 4, 2, 2, 3, 4)  # White Black Latino EastAsian SEAsian Indian MiddleEastern
    for folder, n in (("train", fb.FAIRFACE_TRAIN), ("val", fb.FAIRFACE_VAL)):
        for i in range(1, n + 1):
            row = rows.loc[f"{folder}/{i}.jpg"]
            assert row["age_group"] == i % 9 and row["age"] == ages[i % 9]
            assert row["gender"] == i % 2 and row["race7"] == i % 7
            assert row["race"] == utk[i % 7]
            assert row["service_test"] == ("True", "False")[i % 2]
    assert rows.loc["train/8.jpg", "age"] == 75.0  # "more than 70"
    assert pd.isna(rows.loc["train/42.jpg", "age"]) and pd.isna(rows.loc["train/42.jpg",
                                                                        "age_group"])
    assert rows.loc["train/42.jpg", "race"] == 0
    assert pd.isna(rows.loc["train/43.jpg", "gender"]) and rows.loc["train/43.jpg", "race"] == 3
    assert pd.isna(rows.loc["train/44.jpg", "race"]) and pd.isna(rows.loc["train/44.jpg",
                                                                          "race7"])
    # val/1.jpg and train/1.jpg are different images
    assert rows.loc["val/1.jpg", "path"] != rows.loc["train/1.jpg", "path"]
    split = rows["split"]
    assert (split[split.index.str.startswith("val/")] == "test").all()
    train = split[split.index.str.startswith("train/")]
    assert set(train) == {"train", "val"} and (train == "val").sum() == 5  # 10% of 47
    assert df.attrs["skipped"] == {reason: 1 for _, reason in fb.FAIRFACE_BAD_TRAIN}


def test_fairface_val_is_seeded_and_configurable(roots: dict[str, Path]) -> None:
    first = read_source("fairface", roots["fairface"], seed=1)
    assert first["split"].tolist() == read_source("fairface", roots["fairface"],
                                                  seed=1)["split"].tolist()
    assert first["split"].tolist() != read_source("fairface", roots["fairface"])["split"].tolist()
    none = read_source("fairface", roots["fairface"], val_fraction=0.0)
    assert set(none["split"]) == {"train", "test"}
    with pytest.raises(ValueError, match="val_fraction"):
        FairFaceReader(roots["fairface"], val_fraction=1.0)


# ------------------------------------------------------------------------------ RAF-DB


def test_rafdb(roots: dict[str, Path]) -> None:
    df = read_source("rafdb", roots["rafdb"])
    check_manifest_dtypes(df)
    assert len(df) == fb.RAF_TRAIN + fb.RAF_TEST
    rows = df.set_index("name")
    # RAF 1 Surprise 2 Fear 3 Disgust 4 Happiness 5 Sadness 6 Anger 7 Neutral -> FER order
    fer = {1: 5, 2: 2, 3: 1, 4: 3, 5: 4, 6: 0, 7: 6}
    for i in range(1, fb.RAF_TEST + 1):
        assert rows.loc[f"test_{i:04d}.jpg", "emotion"] == fer[i]
        assert rows.loc[f"test_{i:04d}.jpg", "split"] == "test"
    assert rows.loc["train_00001.jpg", "emotion"] == 5  # the first line wins over the repeat
    assert Path(rows.loc["train_00001.jpg", "path"]).parts[-3:] == (
        "Image", "aligned", "train_00001_aligned.jpg")
    train = rows[rows.index.str.startswith("train_")]["split"]
    assert set(train) == {"train", "val"} and (train == "val").sum() == 3  # 10% of 21 -> 3
    assert df.attrs["skipped"] == {
        **{reason: 1 for _, reason in fb.RAF_BAD},
        "Annotation/manual: attribute file missing (labels blank)": 1,
        "Annotation/manual: attribute file malformed (labels blank)": 1,
        "race code not 0..2 (label blanked)": 1,
        "gender 2 unsure or unknown (label blanked)": 8,  # 9 of the 28 have k % 3 == 2; one
        # of those (train_00003) has a malformed file instead
    }
    # the manual attributes: gender k % 3 (2 unsure: blank), race k % 3, age group k % 5
    for k, name in enumerate(rows.index):
        row = rows.loc[name]
        if name in (fb.RAF_NO_ATTRIBUTES, fb.RAF_MALFORMED_ATTRIBUTES):
            assert row[["gender", "race", "age_group"]].isna().all()
            continue
        assert (pd.isna(row["gender"]) if k % 3 == 2 else row["gender"] == k % 3), name
        assert (pd.isna(row["race"]) if name == fb.RAF_BAD_RACE else row["race"] == k % 3)
        assert row["age_group"] == k % 5
    assert rows["race"].dtype == "Int64" and rows["age_group"].dtype == "Int64"
    no_attributes = read_source("rafdb", roots["rafdb"], attributes=False)
    assert "age_group" not in no_attributes and no_attributes["gender"].isna().all()


def test_rafdb_original_images(roots: dict[str, Path]) -> None:
    df = read_source("rafdb", roots["rafdb"], images="original")
    assert len(df) == fb.RAF_TRAIN + fb.RAF_TEST
    assert all(Path(p).parent.name == "original" and Path(p).name == n
               for p, n in zip(df["path"], df["name"]))
    with pytest.raises(ValueError, match="images"):
        RAFDBReader(roots["rafdb"], images="cropped")


# --------------------------------------------------------------------------- AffectNet


@pytest.mark.parametrize("header", [False, True])
def test_affectnet(header: bool, tmp_path: Path) -> None:
    df = read_source("affectnet", fb.write_affectnet(tmp_path / "aff", validation_header=header))
    check_manifest_dtypes(df)
    kept_bad = 3  # contempt, None, Uncertain: no emotion, valence/arousal kept
    assert len(df) == fb.AFFECTNET_TRAIN + fb.AFFECTNET_VAL + kept_bad
    rows = df.set_index(df["path"].map(lambda p: "/".join(Path(p).parts[-2:])))
    fer = {0: 6, 1: 3, 2: 4, 3: 5, 4: 2, 5: 1, 6: 0}  # AffectNet code -> FER order
    for i in range(1, fb.AFFECTNET_VAL + 1):
        row = rows.loc[f"3/val_{i}.jpg"]
        assert row["emotion"] == fer[i - 1] and row["expression"] == i - 1
        assert row["split"] == "test" and row["valence"] == 0.5 and row["arousal"] == -0.25
    for i in range(1, fb.AFFECTNET_TRAIN + 1):
        row = rows.loc[f"1/img_{i:03d}.jpg"]
        assert row["emotion"] == fer[(i - 1) % 7] and row["split"] in ("train", "val")
        assert math.isclose(row["valence"], (i % 5) / 5)
        assert math.isclose(row["arousal"], -(i % 4) / 4)
    assert rows.loc["1/img_001.jpg", "expression"] == 0  # the first line wins over the repeat
    contempt, none, uncertain = (rows.loc[f"2/{n}.jpg"] for n in ("contempt", "none",
                                                                  "uncertain"))
    assert pd.isna(contempt["emotion"]) and contempt["expression"] == 7
    assert contempt["valence"] == 0.5  # never mapped to another class, still has valence
    assert pd.isna(none["emotion"]) and pd.isna(none["valence"]) and pd.isna(none["arousal"])
    assert uncertain["valence"] == 0.1 and pd.isna(uncertain["arousal"])  # 1.5 blanked
    # the face box (x, y, width, height) = (1, 1, 5, 6) as x1, y1, x2, y2
    assert (df[["box_x1", "box_y1", "box_x2", "box_y2"]].to_numpy() == [1, 1, 6, 7]).all()
    assert "facial_landmarks" not in df
    assert (df["split"] == "val").sum() == 3  # 10% of the 24 training.csv rows, rounded up
    assert df.attrs["skipped"] == {
        **{reason: 1 for _, reason in fb.AFFECTNET_BAD},
        "training.csv: valence -2, none (label missing)": 1,
        "training.csv: arousal -2, none (label missing)": 1,
        "training.csv: arousal outside [-1, 1] (label blanked)": 1,
    }


def test_affectnet_landmarks_and_headers(tmp_path: Path) -> None:
    root = fb.write_affectnet(tmp_path / "aff")
    df = read_source("affectnet", root, landmarks=True)
    assert (df["facial_landmarks"] == fb.LANDMARKS).all()
    (root / "Manually_Annotated_file_lists" / "validation.csv").write_text(
        "subDirectory_filePath,face_x,face_y\n3/val_1.jpg,1,1\n")
    with pytest.raises(ValueError, match="lacks column"):
        read_source("affectnet", root)


# ------------------------------------------------------------------------------- AgeDB


def test_agedb(roots: dict[str, Path]) -> None:
    df = read_source("agedb", roots["agedb"])
    check_manifest_dtypes(df)
    assert len(df) == len(fb.AGEDB_GOOD) + len(fb.AGEDB_BLANKED)
    rows = by_name(df)
    for file, (age, gender, name) in fb.AGEDB_GOOD.items():
        assert (rows.loc[file, "age"], rows.loc[file, "gender"], rows.loc[file, "name"]) == \
            (age, gender, name), file
    assert rows.loc["100_Jean_Claude_Van_Damme_45_m.jpg", "image_id"] == 100
    for file, (age, gender, _) in fb.AGEDB_BLANKED.items():
        row = rows.loc[file]
        assert (pd.isna(row["age"]) if age is None else row["age"] == age), file
        assert (pd.isna(row["gender"]) if gender is None else row["gender"] == gender), file
    expected: dict[str, int] = {}
    for reason in [*(r for *_, r in fb.AGEDB_BLANKED.values()), *fb.AGEDB_DROPPED.values()]:
        expected[reason] = expected.get(reason, 0) + 1
    assert df.attrs["skipped"] == expected
    # grouped by name: a person never crosses splits
    assert (df.groupby("name")["split"].nunique() == 1).all()
    assert set(df["split"]) == {"train", "val", "test"}
    again = read_source("agedb", roots["agedb"])
    assert again["split"].tolist() == df["split"].tolist()


def test_agedb_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no AgeDB images"):
        AgeDBReader(tmp_path).read()


# ------------------------------------------------------------------ configs, preprocess


def compose_conf(config: str, overrides: list[str], tmp_path: Path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config, overrides=overrides)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_source_config_builds_the_reader(name: str, roots: dict[str, Path],
                                         tmp_path: Path) -> None:
    cfg = compose_conf("preprocess", [f"source={name}", f"source.root={roots[name]}",
                                      f"paths.root_dir={tmp_path}"], tmp_path)
    reader = instantiate(cfg.source)
    assert type(reader) is CLASSES[name] and reader.source == name
    pd.testing.assert_frame_equal(reader.read(), read_source(name, roots[name]))


@pytest.mark.parametrize("name, detector", [("celeba", "none"), ("fairface", "none"),
                                            ("rafdb", "none"), ("affectnet", "none"),
                                            ("agedb", "mtcnn")])
def test_data_config_composes(name: str, detector: str, tmp_path: Path) -> None:
    cfg = compose_conf("train", [f"data={name}", f"paths.root_dir={tmp_path}"], tmp_path)
    manifest = cfg.data.manifests[name]
    assert manifest.source._target_ == f"mtlface.data.readers.{CLASSES[name].__name__}"
    assert manifest.source.source == name
    assert manifest.detector._target_.endswith("PassThrough" if detector == "none"
                                               else "MTCNNDetector")
    assert set(cfg.tasks) <= {"age", "gender", "smile", "emotion", "race"}


EXPECTED_COLUMNS = {
    "celeba": {"gender", "smile", "eyeglasses", "no_beard", "5_o_clock_shadow", "identity"},
    "fairface": {"age", "gender", "race", "race7", "age_group"},
    "rafdb": {"emotion", "gender", "race", "age_group"},
    "affectnet": {"emotion", "valence", "arousal", "expression", "box_x1"},
    "agedb": {"age", "gender", "name"},
}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_preprocess_with_detector_none(name: str, roots: dict[str, Path],
                                       tmp_path: Path) -> None:
    """``python preprocess.py source=<name> detector=none`` on the fixture, in process."""
    expected = read_source(name, roots[name])
    cfg = compose_conf("preprocess", [
        f"source={name}", f"source.root={roots[name]}", "detector=none", "crop.size=16",
        f"cache_dir={tmp_path / 'cache'}", f"paths.root_dir={tmp_path}", "progress=false",
        "num_workers=0"], tmp_path)
    summary = run(cfg)
    assert summary.complete and summary.cropped == summary.found == len(expected)
    assert summary.skipped == {} and summary.reader_skipped == expected.attrs["skipped"]
    manifest = read_manifest(summary.folder)
    assert len(manifest) == len(expected) and set(manifest["source"]) == {name}
    assert EXPECTED_COLUMNS[name] <= set(manifest.columns)
    merged = manifest.set_index("orig_path").sort_index()
    for column in ("split", *sorted(EXPECTED_COLUMNS[name] - {"box_x1", "name"})):
        assert merged[column].notna().sum() == expected[column].notna().sum(), column
    for path in manifest["path"].head(3):
        assert cv2.imread(str(Path(summary.folder) / path)).shape == (16, 16, 3)
    if name == "affectnet":  # cropped at the dataset's own face box
        assert np.allclose(manifest[["face_x1", "face_y1", "face_x2", "face_y2"]].to_numpy(),
                           [1, 1, 6, 7])


@pytest.mark.parametrize("name, tasks", [("celeba", ["gender", "smile"]),
                                         ("fairface", ["age", "gender", "race"]),
                                         ("affectnet", ["emotion"])])
def test_fast_training_run_on_the_cache(name: str, tasks: list[str], roots: dict[str, Path],
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``data=<name>`` trains on the cache made with detector=none, extra columns and all."""
    monkeypatch.setenv("MTLFACE_DATA_DIR", str(tmp_path / "data"))
    run(compose_conf("preprocess", [
        f"source={name}", f"source.root={roots[name]}", "detector=none",
        f"cache_dir={tmp_path / 'data' / 'preprocessed'}", f"paths.root_dir={tmp_path}",
        "progress=false", "num_workers=0"], tmp_path))
    cfg = compose_train([f"data={name}", f"tasks=[{','.join(tasks)}]", "debug=fast",
                         f"data.manifests.{name}.source.root={roots[name]}",
                         "data.num_workers=0"], output_dir=tmp_path / "run")
    results = train(cfg)
    for task in tasks:
        assert f"test/{task}/loss" in results
