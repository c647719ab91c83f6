"""The synthetic face generator: cache, determinism, manifest contents, validation, and that the
drawn traits really encode the labels."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from mtlface.data.synthetic import __main__ as synthetic_cli
from mtlface.data.synthetic import provider as synthetic
from mtlface.data.manifest import read_manifest
from mtlface.data.synthetic import SyntheticFaces, render_face, sample_attributes
from mtlface.data.synthetic.attributes import CORE
from mtlface.labels import label

SOURCES = {
    "rgb_src": {"tasks": ["age", "gender", "race"], "image_size": 32,
                "splits": {"train": 20, "val": 8, "test": 8}},
    "grey_src": {"tasks": ["emotion", "smile"], "image_size": 24, "grey": True,
                 "splits": {"train": 20, "test": 6}},
}


def image_bytes(folder: Path) -> dict[str, bytes]:
    images = sorted(folder.rglob("*" + synthetic.IMAGE_EXT))
    return {str(p.relative_to(folder)): p.read_bytes() for p in images}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """One small cache generated with 2 worker processes, shared by the read-only tests."""
    return SyntheticFaces(tmp_path_factory.mktemp("syn"), SOURCES, seed=0,
                          num_workers=2).prepare()


def test_manifest_has_requested_splits_and_only_each_sources_tasks(generated):
    df = read_manifest(generated)
    for name, spec in SOURCES.items():
        rows = df[df.source == name]
        assert rows.groupby("split").size().to_dict() == spec["splits"]
        for task in CORE:
            labelled = rows[task].notna()
            assert labelled.all() if task in spec["tasks"] else not labelled.any(), (name, task)
    assert df.age.dropna().between(1, 90).all()
    for name in ("gender", "race", "emotion", "smile"):
        assert df[name].dropna().isin(range(label(name).num_classes)).all()
    grey = df[df.source == "grey_src"]
    happy = label("emotion").classes.index("happy")
    assert ((grey.emotion == happy) == (grey.smile == 1)).all()  # smile is the happy face


def test_images_have_the_source_size_and_channels(generated):
    df = read_manifest(generated)
    for row in df.itertuples():
        spec = SOURCES[row.source]
        with Image.open(generated.parent / row.path) as img:
            assert img.size == (spec["image_size"],) * 2
            assert img.mode == ("L" if spec.get("grey") else "RGB")


def test_same_seed_is_byte_identical_whatever_the_worker_count(generated, tmp_path):
    again = SyntheticFaces(tmp_path, SOURCES, seed=0, num_workers=1).prepare()
    assert again.parent.name == generated.parent.name
    assert again.read_bytes() == generated.read_bytes()
    assert image_bytes(again.parent) == image_bytes(generated.parent)


def test_other_seed_gives_other_folder_and_images(generated, tmp_path):
    other = SyntheticFaces(tmp_path, SOURCES, seed=1, num_workers=1).prepare()
    assert other.parent.name != generated.parent.name
    a, b = image_bytes(generated.parent), image_bytes(other.parent)
    assert a.keys() == b.keys()
    assert sum(a[k] != b[k] for k in a) == len(a)


def test_cached_prepare_does_no_work(generated, monkeypatch):
    before = {p: p.stat().st_mtime_ns for p in generated.parent.rglob("*")}

    def boom(*args, **kwargs):
        raise AssertionError("a cached prepare() must not render")

    monkeypatch.setattr(synthetic, "render_face", boom)
    start = time.perf_counter()
    path = SyntheticFaces(generated.parent.parent, SOURCES, seed=0, num_workers=1).prepare()
    assert time.perf_counter() - start < 0.5
    assert path == generated
    assert {p: p.stat().st_mtime_ns for p in generated.parent.rglob("*")} == before


def test_cache_key_is_canonical_and_changes_with_settings(tmp_path):
    key = SyntheticFaces(tmp_path, SOURCES).key
    reordered = {name: dict(reversed(list(spec.items())))
                 for name, spec in reversed(list(SOURCES.items()))}
    assert SyntheticFaces(tmp_path, reordered).key == key
    assert SyntheticFaces(tmp_path, OmegaConf.create(SOURCES)).key == key  # Hydra config
    explicit = {"s": {"tasks": ["gender", "age"], "splits": {"train": 3}, "image_size": 64,
                      "grey": False}}
    assert SyntheticFaces(tmp_path, {"s": {"tasks": ["age", "gender"],
                                           "splits": {"train": 3}}}).key == \
        SyntheticFaces(tmp_path, explicit).key
    changed = {**SOURCES, "grey_src": {**SOURCES["grey_src"], "splits": {"train": 3}}}
    assert SyntheticFaces(tmp_path, changed).key != key
    assert SyntheticFaces(tmp_path, SOURCES, seed=5).key != key


def test_new_settings_generate_into_a_new_folder_and_leave_no_temp(tmp_path):
    small = {"s": {"tasks": ["smile"], "image_size": 16, "splits": {"train": 2}}}
    first = SyntheticFaces(tmp_path, small, num_workers=1).prepare()
    small["s"]["splits"]["val"] = 1
    second = SyntheticFaces(tmp_path, small, num_workers=1).prepare()
    assert first.parent != second.parent and first.is_file() and second.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.parent.name,
                                                                 second.parent.name])


def test_failed_generation_leaves_no_cache(tmp_path, monkeypatch):
    calls = []

    def fail_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return render_face(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render_face", fail_on_third)
    with pytest.raises(RuntimeError, match="killed"):
        SyntheticFaces(tmp_path, SOURCES, num_workers=1).prepare()
    assert list(tmp_path.iterdir()) == []


def test_stale_temp_of_a_dead_run_is_removed(tmp_path):
    provider = SyntheticFaces(tmp_path, {"s": {"tasks": ["age"], "image_size": 16,
                                               "splits": {"test": 2}}}, num_workers=1)
    stale = tmp_path / f".tmp-{provider.key}-99999999"  # no such pid
    (stale / "s" / "test").mkdir(parents=True)
    provider.prepare()
    assert [p.name for p in tmp_path.iterdir()] == [provider.key]


def test_losing_a_race_to_another_process_is_fine(tmp_path, monkeypatch):
    provider = SyntheticFaces(tmp_path, {"s": {"tasks": ["age"], "image_size": 16,
                                               "splits": {"test": 2}}}, num_workers=1)
    generate = SyntheticFaces._generate

    def other_process_finishes_first(self, tmp):
        n = generate(self, tmp)
        (self.folder / "s").mkdir(parents=True)
        (self.manifest_path).write_text("path,source,split\n")
        return n

    monkeypatch.setattr(SyntheticFaces, "_generate", other_process_finishes_first)
    assert provider.prepare() == provider.manifest_path
    assert provider.manifest_path.read_text() == "path,source,split\n"  # the winner's, untouched
    assert [p.name for p in tmp_path.iterdir()] == [provider.key]


@pytest.mark.parametrize("spec, message", [
    ({"tasks": ["age", "height"], "splits": {"train": 5}}, r"unknown task.*'height'.*'emotion'"),
    ({"tasks": "age", "splits": {"train": 5}}, r"'tasks' must be a non-empty list"),
    ({"tasks": [], "splits": {"train": 5}}, r"'tasks' must be a non-empty list"),
    ({"tasks": ["age"], "splits": {"dev": 5}}, r"unknown split.*'dev'.*'train', 'val', 'test'"),
    ({"tasks": ["age"], "splits": {"train": -3}}, r"split 'train' size must be a positive"),
    ({"tasks": ["age"], "splits": {"train": 0}}, r"positive integer"),
    ({"tasks": ["age"], "splits": {"train": 2.5}}, r"positive integer"),
    ({"tasks": ["age"], "splits": {}}, r"'splits' must be a non-empty mapping"),
    ({"tasks": ["age"], "splits": {"train": 5}, "image_size": 4}, r"'image_size' must be"),
    ({"tasks": ["age"], "splits": {"train": 5}, "grey": "yes"}, r"'grey' must be true or false"),
    ({"tasks": ["age"], "splits": {"train": 5}, "colour": True}, r"unknown key.*'colour'"),
    ({"tasks": ["age"], "splits": {"train": 5}, "folds": 2}, r"'folds' must be an integer >= 3"),
    ({"tasks": ["age"], "splits": {"train": 5}, "folds": "5"}, r"'folds' must be an integer"),
])
def test_bad_source_settings_raise_a_helpful_error(tmp_path, spec, message):
    with pytest.raises(ValueError, match=r"source 'bad'.*" + message):
        SyntheticFaces(tmp_path, {"ok": SOURCES["rgb_src"], "bad": spec})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sources, seed, message", [
    ({}, 0, "non-empty mapping"),
    ({"../escape": SOURCES["rgb_src"]}, 0, "names a folder"),
    (SOURCES, -1, "non-negative"),
])
def test_bad_settings_raise(tmp_path, sources, seed, message):
    with pytest.raises(ValueError, match=message):
        SyntheticFaces(tmp_path, sources, seed=seed)


def test_attributes_are_balanced_and_smile_only_sources_get_balanced_smiles():
    happy = label("emotion").classes.index("happy")
    rng = np.random.default_rng(0)
    everything = [sample_attributes(rng, ["age", "gender", "race", "emotion"]) for _ in range(3500)]
    for name, k in [("gender", 2), ("race", 5), ("emotion", 7)]:
        freq = np.bincount([a[name] for a in everything], minlength=k) / len(everything)
        assert np.allclose(freq, 1 / k, atol=0.03), (name, freq)
    assert all(a["smile"] == (a["emotion"] == happy) for a in everything)
    ages = np.array([a["age"] for a in everything])
    assert ages.min() == 1 and ages.max() == 90 and (ages == ages.round()).all()

    smiles = [sample_attributes(rng, ["smile"]) for _ in range(2000)]
    assert abs(np.mean([a["smile"] for a in smiles]) - 0.5) < 0.04
    assert all(a["smile"] == (a["emotion"] == happy) for a in smiles)


def test_render_face_is_deterministic_and_shaped():
    attrs = {"age": 30.0, "gender": 1, "race": 2, "emotion": 3, "smile": 1}
    rgb = render_face(attrs, np.random.default_rng(3), 64, False)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb, render_face(attrs, np.random.default_rng(3), 64, False))
    grey = render_face(attrs, np.random.default_rng(3), 48, True)
    assert grey.shape == (48, 48) and grey.dtype == np.uint8


# ------------------------------------------------------------------ traits are really drawn

def faces(task: str, n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """n grey 48 px faces (the default model's input) with their ``task`` label."""
    imgs, labels = [], []
    for i in range(n):
        rng = np.random.default_rng([99, offset, i])
        attrs = sample_attributes(rng, [task])
        imgs.append(render_face(attrs, rng, 48, True))
        labels.append(attrs[task])
    return np.stack(imgs), np.array(labels)


def gradient_histograms(imgs: np.ndarray, cells: int = 6, bins: int = 8) -> np.ndarray:
    """A tiny HOG: gradient orientation histograms on a cells x cells grid (shift tolerant)."""
    out = []
    for img in imgs.astype(np.float32):
        gx, gy = cv2.Sobel(img, cv2.CV_32F, 1, 0), cv2.Sobel(img, cv2.CV_32F, 0, 1)
        b = np.minimum((np.arctan2(gy, gx) % np.pi / np.pi * bins).astype(int), bins - 1)
        cell = np.arange(img.shape[0]) * cells // img.shape[0]
        hist = np.zeros((cells, cells, bins), np.float32)
        np.add.at(hist, (cell[:, None], cell[None, :], b), np.hypot(gx, gy))
        out.append(hist.ravel() / (np.linalg.norm(hist) + 1e-6))
    return np.stack(out)


def ridge(x: np.ndarray, y: np.ndarray, lam: float = 1.0) -> np.ndarray:
    """Least-squares linear model (with a bias column) in closed form: instant, no training loop."""
    x = np.hstack([x, np.ones((len(x), 1))])
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)


def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((len(x), 1))]) @ w


@pytest.mark.parametrize("task, min_accuracy", [("gender", 0.72), ("smile", 0.62)])
def test_binary_traits_are_visible_to_a_linear_classifier(task, min_accuracy):
    x, y = faces(task, 400, 0)
    xt, yt = faces(task, 300, 1)
    w = ridge(gradient_histograms(x), 2.0 * y - 1)
    accuracy = ((predict(w, gradient_histograms(xt)) > 0) == yt).mean()
    assert accuracy > min_accuracy  # chance is 0.5; measured 0.85 (gender), 0.72 (smile)


def test_skin_luminance_is_ordered_by_race():
    imgs, race = faces("race", 250, 2)
    centre = imgs[:, 20:28, 18:30].reshape(len(imgs), -1)  # cheeks and nose: skin in every pose
    skin = np.median(centre, axis=1)
    means = [skin[race == r].mean() for r in range(5)]
    white, black, asian, indian, others = means
    assert white > asian > others > indian > black
    assert min(np.diff(sorted(means))) > 8  # measured 15 (white/asian: bright skin saturates)


def test_age_is_predictable_from_the_image():
    def features(imgs: np.ndarray) -> np.ndarray:  # shapes and lines + coarse brightness (hair)
        small = [cv2.resize(img, (8, 8), interpolation=cv2.INTER_AREA).ravel() for img in imgs]
        return np.hstack([gradient_histograms(imgs), np.stack(small) / 255])

    x, age = faces("age", 500, 3)
    xt, aget = faces("age", 300, 4)
    predicted = predict(ridge(features(x), age), features(xt))
    assert np.corrcoef(predicted, aget)[0, 1] > 0.6  # measured 0.87


def test_cli_prints_the_manifest_and_counts(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(synthetic_cli, "DEFAULT_SOURCES", {"tiny": {
        "tasks": ["emotion"], "image_size": 16, "grey": True, "splits": {"train": 3, "val": 2}}})
    synthetic_cli.main(["--root", str(tmp_path), "--seed", "4", "--workers", "1"])
    out = capsys.readouterr().out.splitlines()
    assert Path(out[0]).is_file() and Path(out[0]).parent.parent == tmp_path
    assert out[-1].split() == ["tiny", "3", "2", "0"]
    assert os.path.basename(out[0]) == "manifest.csv"


def test_folds_add_a_balanced_seeded_fold_column_to_that_source_only(tmp_path):
    """``folds=K``: every image of the source (all splits) gets a fold, sizes within one of
    each other, the same for the same seed; the images are those of the fold-less settings,
    whose cache key is unchanged by the option's existence."""
    folded = {**SOURCES, "rgb_src": {**SOURCES["rgb_src"], "folds": 5}}
    plain = SyntheticFaces(tmp_path / "a", SOURCES)
    assert plain.key == SyntheticFaces(tmp_path / "a", {**SOURCES, "rgb_src": {
        **SOURCES["rgb_src"], "folds": None}}).key
    rows = read_manifest(SyntheticFaces(tmp_path / "b", folded).prepare())
    mine = rows[rows["source"] == "rgb_src"]
    sizes = mine["fold"].value_counts().sort_index()
    assert list(sizes.index) == [0, 1, 2, 3, 4] and sizes.sum() == 36
    assert sizes.max() - sizes.min() <= 1
    assert rows.loc[rows["source"] == "grey_src", "fold"].isna().all()
    again = read_manifest(SyntheticFaces(tmp_path / "c", folded).prepare())
    assert list(again["fold"].fillna(-1)) == list(rows["fold"].fillna(-1))
    other_seed = read_manifest(SyntheticFaces(tmp_path / "d", folded, seed=1).prepare())
    assert list(other_seed["fold"].fillna(-1)) != list(rows["fold"].fillna(-1))
    assert image_bytes(tmp_path / "b" / SyntheticFaces(tmp_path, folded).key) == \
        image_bytes(plain.prepare().parent)
