"""The preprocessing stage: MTCNN on real photos, bad inputs as counted skips, every real
on-disk format through detector=none, caching, resume after an interruption, shards."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from PIL import Image

import fixtures_real as fx
from conftest import CONF_DIR, ROOT
from mtlface.data.manifest import read_manifest
from mtlface.data.readers import read_source
from mtlface.data.preprocess import CropSpec, PassThrough, Shard, run
from mtlface.data.preprocess import stage as stage_module
from mtlface.data.preprocess.cli import build_stage


def compose_preprocess(overrides, tmp_path: Path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("preprocess", overrides=[
            f"cache_dir={tmp_path / 'cache'}", f"paths.root_dir={tmp_path}", "progress=false",
            "num_workers=0", *overrides])


def preprocess(tmp_path: Path, *overrides: str):
    return run(compose_preprocess(list(overrides), tmp_path))


def write_csv_source(folder: Path, images: dict[str, object]) -> Path:
    """A CSV-described source (``path,age``) over ``images``: name -> array, bytes or PIL."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        if isinstance(image, bytes):
            (folder / name).write_bytes(image)
        elif isinstance(image, Image.Image):
            image.save(folder / name)
        else:
            Image.fromarray(image).save(folder / name)
    csv = folder / "labels.csv"
    csv.write_text("path,age\n" + "".join(f"{n},{20 + i}\n" for i, n in enumerate(images)))
    return csv


def all_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


class SlowPassThrough(PassThrough):
    """``detector=none`` taking a set time per image, so a run can be killed part way."""

    def __init__(self, box_columns=None, seconds_per_image: float = 0.01) -> None:
        super().__init__(box_columns)
        self.seconds_per_image = seconds_per_image

    def detect(self, images, rows):
        time.sleep(self.seconds_per_image * len(images))
        return super().detect(images, rows)


def recorded_ids(cache: Path) -> set[str]:
    """Ids of the results saved in progress files under ``cache``."""
    frames = [pd.read_csv(f, dtype=str) for f in cache.rglob("part-*.csv")]
    return set(pd.concat(frames)["id"]) if frames else set()


@pytest.fixture(scope="module")
def photos(grace_hopper) -> dict[str, np.ndarray]:
    skimage = pytest.importorskip("skimage.data")
    rng = np.random.default_rng(0)
    return {"astronaut.png": skimage.astronaut(), "grace_hopper.png": grace_hopper,
            "noise1.png": rng.integers(0, 256, (300, 400, 3), dtype=np.uint8),
            "noise2.png": rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)}


# Face boxes in the photos (x1, y1, x2, y2), by eye: the crop must be centred on them.
FACES = {"astronaut.png": (175, 60, 275, 175), "grace_hopper.png": (170, 115, 360, 345)}


def test_mtcnn_crops_the_face_in_real_photos_and_skips_noise(tmp_path, photos):
    csv = write_csv_source(tmp_path / "raw", photos)
    summary = preprocess(tmp_path, "source=csv", f"source.root={csv}", "detector=mtcnn",
                         "crop.align=true", "crop.size=128")
    assert summary.complete and summary.found == 4 and summary.cropped == 2
    assert summary.skipped == {"no face found": 2}
    assert sorted(summary.examples["no face found"]) == ["noise1.png", "noise2.png"]
    manifest = read_manifest(summary.folder).set_index("orig_path")
    for name, (x1, y1, x2, y2) in FACES.items():
        row = manifest.loc[name]
        cx, cy = (row.face_x1 + row.face_x2) / 2, (row.face_y1 + row.face_y2) / 2
        assert x1 < cx < x2 and y1 < cy < y2, (name, row)
        assert row.det_score > 0.99 and row.num_faces == 1
        crop = cv2.imread(str(Path(summary.folder) / row.path))
        assert crop.shape == (128, 128, 3)
    assert set(manifest.loc[list(FACES), "age"]) == {20.0, 21.0}  # labels follow their image


def test_mtcnn_second_face_rule_and_largest_pick(tmp_path, photos):
    """Two faces side by side: skipped by max_second_score, kept with the rule off."""
    small = cv2.resize(photos["grace_hopper.png"], (256, 300))
    pair = np.concatenate([photos["grace_hopper.png"][:300], small], axis=1)
    csv = write_csv_source(tmp_path / "raw", {"pair.png": pair})
    skip = preprocess(tmp_path, "source=csv", f"source.root={csv}", "detector=mtcnn")
    assert skip.skipped == {"second face scoring above 0.95": 1}
    keep = preprocess(tmp_path, "source=csv", f"source.root={csv}", "detector=mtcnn",
                      "detector.max_second_score=null", "detector.pick=largest")
    assert keep.cropped == 1 and keep.folder != skip.folder
    row = read_manifest(keep.folder).iloc[0]
    assert row.num_faces == 2 and row.face_x2 < 512  # the larger face: the left one


def test_bad_and_unusual_inputs_are_counted_not_crashes(tmp_path):
    rgb = np.full((40, 40, 3), 90, np.uint8)
    ok, jpeg = cv2.imencode(".jpg", rgb)
    images = {
        "rgb.jpg": rgb,
        "grey.png": Image.fromarray(np.full((40, 40), 100, np.uint8)),
        "rgba.png": Image.fromarray(np.dstack([rgb, np.full((40, 40), 255, np.uint8)])),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "deep.png": Image.fromarray(np.full((40, 40), 40000, np.uint16)),
        "empty.jpg": b"",
        "garbage.jpg": os.urandom(500),
        "truncated.jpg": jpeg.tobytes()[: len(jpeg) // 2],
    }
    csv = write_csv_source(tmp_path / "raw", images)
    summary = preprocess(tmp_path, "source=csv", f"source.root={csv}", "detector=none",
                         "crop.size=32")
    assert summary.found == 8 and summary.cropped == 5
    assert summary.skipped == {"zero-byte file": 1, "unreadable or corrupt image": 2}
    assert summary.converted == {"from CMYK": 1, "from I;16": 1, "from L": 1, "from RGBA": 1}
    saved = json.loads((Path(summary.folder) / "summary.json").read_text())
    assert saved["skipped"] == summary.skipped
    manifest = read_manifest(summary.folder).set_index("orig_path")
    deep = cv2.imread(str(Path(summary.folder) / manifest.loc["deep.png", "path"]))
    assert 150 < deep.mean() < 160  # 40000 / 257, not clipped to white


@pytest.mark.parametrize("source, writer", [
    ("utkface", fx.write_utkface), ("imdb_wiki", fx.write_imdb_wiki),
    ("genki4k", fx.write_genki4k), ("adience", fx.write_adience),
    ("fer2013", fx.write_fer2013), ("ckplus", fx.write_ckplus),
])
def test_every_real_format_preprocesses_with_detector_none(tmp_path, source, writer):
    root = writer(tmp_path / "raw" / source)
    expected = len(read_source(source, root))  # every row the reader keeps gets a crop
    assert expected > 0
    summary = preprocess(tmp_path, f"source={source}", f"source.root={root}", "detector=none",
                         "crop.size=16")
    assert summary.complete and summary.cropped == summary.found == expected
    assert summary.skipped == {} and summary.reader_skipped  # the fixtures' defects counted
    manifest = read_manifest(summary.folder)
    assert len(manifest) == expected and set(manifest["source"]) == {source}
    for path in manifest["path"].head(3):
        assert cv2.imread(str(Path(summary.folder) / path)).shape == (16, 16, 3)


def test_imdb_wiki_is_cropped_at_its_face_location(tmp_path):
    root = fx.write_imdb_wiki(tmp_path / "raw")
    summary = preprocess(tmp_path, "source=imdb_wiki", f"source.root={root}", "detector=none")
    manifest = read_manifest(summary.folder)
    assert (manifest["face_x1"] == manifest["box_x1"]).all()
    assert (manifest["face_y2"] == 120).all()


def test_a_rerun_does_no_work_and_a_changed_setting_makes_a_new_cache(tmp_path):
    root = fx.write_utkface(tmp_path / "raw")
    first = preprocess(tmp_path, f"source.root={root}", "detector=none", "crop.size=16")
    files = {p: p.stat().st_mtime_ns for p in all_files(Path(first.folder))}
    os.rename(root, tmp_path / "moved")  # a re-run must not even read the dataset
    again = preprocess(tmp_path, f"source.root={root}", "detector=none", "crop.size=16")
    assert again.cached and again.processed == 0 and again.cropped == first.cropped
    assert {p: p.stat().st_mtime_ns for p in all_files(Path(first.folder))} == files
    os.rename(tmp_path / "moved", root)
    other = preprocess(tmp_path, f"source.root={root}", "detector=none", "crop.size=24")
    assert other.folder != first.folder and other.processed == first.processed


def test_an_interrupted_run_resumes_and_leaves_no_temp_files(tmp_path, monkeypatch):
    root = fx.write_utkface(tmp_path / "raw")
    args = ("source=utkface", f"source.root={root}", "detector=none", "crop.size=16",
            "batch_size=4", "flush_every=4")
    partial = preprocess(tmp_path, *args, "limit=10")  # a run stopped by a limit
    folder = Path(partial.folder)
    assert not partial.complete and partial.processed == 10
    assert not (folder / "manifest.csv").exists()

    calls = {"n": 0}
    real_crop = stage_module.crop_face

    def crash_on_ninth(*a, **k):  # a crash (or Ctrl-C) in the middle of the next run
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt
        return real_crop(*a, **k)

    monkeypatch.setattr(stage_module, "crop_face", crash_on_ninth)
    with pytest.raises(KeyboardInterrupt):
        preprocess(tmp_path, *args)
    monkeypatch.setattr(stage_module, "crop_face", real_crop)
    done = preprocess(tmp_path, *args)
    assert done.complete and done.done_before == 18 and done.processed == 40 - 18
    manifest = read_manifest(folder)
    assert len(manifest) == manifest["id"].nunique() == 40
    assert not [p for p in all_files(folder) if p.suffix in (".part", ".tmp")]
    assert len(list((folder / "crops").rglob("*.jpg"))) == 40


@pytest.fixture
def umask(request):
    """Run the test under ``request.param`` as the umask."""
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


@pytest.mark.parametrize("umask", [0o022, 0o002], indirect=True)
def test_cache_files_get_the_mode_the_umask_gives_like_its_folders(tmp_path, umask):
    root = fx.write_ckplus(tmp_path / "raw")
    args = ("source=ckplus", f"source.root={root}", "detector=none", "crop.size=16")
    for shard in ("shard=0/2", "shard=1/2"):
        preprocess(tmp_path, *args, shard)
    folder = Path(preprocess(tmp_path, *args).folder)
    (folder / "manifest.csv").unlink()
    preprocess(tmp_path, *args, "merge=true")  # the merged manifest too
    entries = list((tmp_path / "cache").rglob("*"))
    assert {oct(p.stat().st_mode & 0o777) for p in entries if p.is_file()} == {
        oct(0o666 & ~umask)}
    assert {oct(p.stat().st_mode & 0o777) for p in entries if p.is_dir()} == {
        oct(0o777 & ~umask)}


def empty_folders(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_dir() and not any(p.iterdir())]


def test_no_temp_folder_or_empty_folder_is_left(tmp_path):
    root = fx.write_utkface(tmp_path / "raw")
    args = (f"source.root={root}", "detector=none", "crop.size=16", "batch_size=4")
    cache = tmp_path / "cache"
    folder = Path(preprocess(tmp_path, *args, "limit=10").folder)  # a partial run
    assert not list(cache.rglob("tmp")) and not empty_folders(cache)
    (folder / "tmp" / "999999999").mkdir(parents=True)  # left by a killed process (no pid)
    preprocess(tmp_path, *args)
    assert not list(cache.rglob("tmp")) and not empty_folders(cache)
    (folder / "manifest.csv").unlink()
    preprocess(tmp_path, *args, "merge=true")
    assert not list(cache.rglob("tmp")) and not empty_folders(cache)


def test_shards_split_the_work_and_merge_into_one_manifest(tmp_path):
    root = fx.write_ckplus(tmp_path / "raw")
    args = ("source=ckplus", f"source.root={root}", "detector=none", "crop.size=16")
    n = len(read_source("ckplus", root))
    first = preprocess(tmp_path, *args, "shard=0/3")
    folder = Path(first.folder)
    assert first.complete and not (folder / "manifest.csv").exists()
    second = preprocess(tmp_path, *args, "shard=2/3")
    assert not (folder / "manifest.csv").exists()
    third = preprocess(tmp_path, *args, "shard=1/3")
    sizes = [first.found, second.found, third.found]
    assert sum(sizes) == n and min(sizes) > 0  # the hash spreads the images
    merged = read_manifest(folder)
    assert len(merged) == merged["id"].nunique() == n
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["cropped"] == n and summary["shards"] == 3
    (folder / "manifest.csv").unlink()  # shards copied from other machines: merge by hand
    assert preprocess(tmp_path, *args, "merge=true").cropped == n
    assert len(read_manifest(folder)) == n
    with pytest.raises(ValueError, match="shard must be 'i/N'"):
        Shard.parse("3/3")


def test_crop_settings_are_cropspec_itself(tmp_path):
    """conf/preprocess.yaml takes the crop node from CropSpec (a structured config): the
    defaults are the dataclass's, the YAML repeats none, overrides are typed."""
    cfg = compose_preprocess([], tmp_path)
    assert dict(cfg.crop) == dataclasses.asdict(CropSpec())
    assert "crop" not in OmegaConf.load(CONF_DIR / "preprocess.yaml")  # only in `defaults`
    stage = build_stage(compose_preprocess(["crop.margin=0.5", "crop.size=null"], tmp_path))
    assert stage.crop == CropSpec(size=None, margin=0.5)
    for override in ("crop.margin=abc", "crop.size=true", "crop.marign=0.1"):
        with pytest.raises(ConfigCompositionException, match=re.escape(override.split("=")[0])):
            compose_preprocess([override], tmp_path)


def _script(tmp_path: Path, *overrides: str, **kwargs) -> subprocess.Popen:
    cmd = [sys.executable, "preprocess.py", f"cache_dir={tmp_path / 'cache'}",
           f"hydra.run.dir={tmp_path / 'run'}", "num_workers=2", *overrides]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kwargs)


@pytest.mark.integration  # preprocess.py in a subprocess
def test_preprocess_script_runs_and_prints_a_summary(tmp_path):
    root = fx.write_genki4k(tmp_path / "raw")
    proc = _script(tmp_path, "source=genki4k", f"source.root={root}", "detector=none",
                   "batch_size=4")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert "cropped" in out and "label line is not 4 numbers" in out
    assert len(list((tmp_path / "cache" / "genki4k").glob("*/manifest.csv"))) == 1


def _run_script(tmp_path: Path, *overrides: str, **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "preprocess.py", f"cache_dir={tmp_path / 'cache'}",
           f"hydra.run.dir={tmp_path / 'run'}", "detector=none", *overrides]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


@pytest.mark.integration  # preprocess.py in a subprocess
@pytest.mark.parametrize("overrides, code, says", [
    (["source=genki4k"], 1, "GENKI-4K: folder not found: "),  # a missing dataset
    (["batch_size=abc"], 2, "batch_size=abc is not a whole number >= 1"),
    (["num_workers=-1"], 2, "num_workers=-1 is not a whole number >= 0"),
    (["batsh_size=3"], 2, "Could not override 'batsh_size'"),  # found by Hydra, not the job
    (["crop.margin=abc"], 2, "Error merging override crop.margin=abc (Value 'abc'"),  # CropSpec
    (["crop.jpeg_quality=0"], 2, "crop.jpeg_quality must be in 1..100, got 0"),
])
def test_a_mistake_ends_with_one_error_line(tmp_path, overrides, code, says):
    done = _run_script(tmp_path, f"source.root={tmp_path / 'missing'}", *overrides)
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith(f"error: {says}") and done.stderr.count("\n") == 1, \
        done.stderr
    assert not (tmp_path / "cache").exists()


@pytest.mark.integration  # preprocess.py in a subprocess
@pytest.mark.parametrize("flags, env", [(["--debug"], {}), ([], {"HYDRA_FULL_ERROR": "1"})])
def test_debug_shows_the_traceback(tmp_path, flags, env):
    done = _run_script(tmp_path, "source=genki4k", f"source.root={tmp_path / 'missing'}",
                       *flags, **env)
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr
    assert "GENKI-4K: folder not found" in done.stderr


@pytest.mark.slow
def test_kill_9_mid_run_then_resume(tmp_path):
    """A real kill -9 of the script while workers write crops, then a re-run completes."""
    raw = tmp_path / "raw"
    rng = np.random.default_rng(0)
    images = {f"{i:04d}.png": rng.integers(0, 256, (600, 600, 3), np.uint8) for i in range(300)}
    csv = write_csv_source(raw, images)
    args = ("source=csv", f"source.root={csv}", "detector=none", "batch_size=8",
            "flush_every=16")
    proc = _script(tmp_path, *args, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "cache").rglob("part-*.csv")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert not list((tmp_path / "cache").rglob("manifest.csv"))
    again = _script(tmp_path, *args)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out[-3000:]
    folder = next((tmp_path / "cache" / "csv").iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["cropped"] == 300 and summary["done_before"] > 0
    assert len(pd.read_csv(folder / "manifest.csv")) == 300
    assert not [p for p in all_files(folder) if p.suffix in (".part", ".tmp")]


@pytest.mark.integration  # preprocess.py in a subprocess
def test_kill_9_loses_only_seconds_of_work(tmp_path):
    """Progress is saved by time, not only every flush_every (512) results: a kill -9 part way
    through 240 images leaves most of the work recorded; the re-run does only the rest and
    makes the manifest an uninterrupted run makes."""
    rng = np.random.default_rng(0)
    images = {f"{i:03d}.png": rng.integers(0, 256, (24, 24, 3), np.uint8) for i in range(240)}
    csv = write_csv_source(tmp_path / "raw", images)
    args = ("source=csv", f"source.root={csv}", "detector=none", "crop.size=16", "batch_size=8")
    slow = (f"detector._target_={__name__}.SlowPassThrough", "+detector.seconds_per_image=0.01",
            "flush_seconds=0.2")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    proc = _script(tmp_path, *args, *slow, start_new_session=True, env=env)
    cache = tmp_path / "cache"
    deadline = time.time() + 20
    while time.time() < deadline and len(recorded_ids(cache)) < 40:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    done = recorded_ids(cache)
    assert 40 <= len(done) < 240 and not list(cache.rglob("manifest.csv"))

    again = _script(tmp_path, *args, *slow, env=env)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out[-3000:]
    folder = next((cache / "csv").iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["done_before"] == len(done) and summary["processed"] == 240 - len(done)
    assert not (folder / "tmp").exists()  # the killed processes' temp folders are gone too

    whole = Path(preprocess(tmp_path / "whole", *args).folder)
    resumed, uninterrupted = (read_manifest(f).sort_values("id").reset_index(drop=True)
                              for f in (folder, whole))
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    assert all((folder / p).read_bytes() == (whole / p).read_bytes() for p in resumed["path"])


@pytest.mark.integration
@pytest.mark.parametrize("launcher", ["basic", "local"])
def test_a_sharded_sweep_is_merged_when_it_ends(tmp_path, launcher):
    """``preprocess.py -m shard=0/3,1/3,2/3`` runs the shards as jobs (in turn, or as parallel
    processes with hydra/launcher=local) and the multirun's end merges them, even when no job
    merged them itself (the shards of other machines)."""
    root = fx.write_ckplus(tmp_path / "raw")
    n = len(read_source("ckplus", root))
    cmd = [sys.executable, "preprocess.py", "-m", "shard=0/3,1/3,2/3", "source=ckplus",
           f"source.root={root}", "detector=none", "crop.size=16", "num_workers=0",
           f"cache_dir={tmp_path / 'cache'}", "progress=false"]
    if launcher == "local":
        cmd.append("hydra/launcher=local")
    env = {**os.environ, "MTLFACE_LOG_DIR": str(tmp_path / "outputs")}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = (tmp_path / "cache" / "ckplus").iterdir()
    merged = read_manifest(folder)
    assert len(merged) == merged["id"].nunique() == n
    assert json.loads((folder / "summary.json").read_text())["shards"] == 3
    assert len(list((tmp_path / "outputs" / "preprocess" / "multiruns").glob("*/[0-2]"))) == 3


def test_the_merge_callback_merges_shards_no_job_merged(tmp_path):
    from hydra.core.hydra_config import HydraConfig

    from mtlface.data.preprocess.callback import MergeShards

    root = fx.write_ckplus(tmp_path / "raw")
    args = ["source=ckplus", f"source.root={root}", "detector=none", "crop.size=16"]
    for shard in ("shard=0/2", "shard=1/2"):
        folder = Path(preprocess(tmp_path, *args, shard).folder)
    (folder / "manifest.csv").unlink()  # as if the shards ran on other machines
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("preprocess", return_hydra_config=True, overrides=[
            f"cache_dir={tmp_path / 'cache'}", "progress=false", "num_workers=0", *args,
            "hydra.overrides.task=['shard=0/2']"])
    cfg.hydra.runtime.cwd = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    MergeShards().on_multirun_end(cfg)
    assert len(read_manifest(folder)) == len(read_source("ckplus", root))


@pytest.mark.parametrize("orientation, turn", [(1, None), (6, Image.Transpose.ROTATE_270),
                                                (3, Image.Transpose.ROTATE_180)])
def test_a_photo_stored_sideways_is_decoded_upright(tmp_path, orientation, turn):
    """EXIF orientation (phones store the sensor's pixels and a tag): the decoded array is the
    image as shown, and a photo without a tag is decoded as stored."""
    from mtlface.data.preprocess.images import load_rgb

    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :10] = (255, 0, 0)  # a red band on the left of the stored image
    stored = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    path = tmp_path / "photo.png"
    stored.save(path, exif=exif)
    upright = np.asarray(stored.transpose(turn) if turn else stored)
    decoded = load_rgb(str(path)).image
    assert decoded.shape == upright.shape
    np.testing.assert_array_equal(decoded, upright)
