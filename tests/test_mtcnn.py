"""MTCNN on onnxruntime (``mtlface.data.preprocess.mtcnn``): the same faces as facenet-pytorch
on real photos, its pieces against facenet-pytorch's own, the ONNX file cache, the backend
switch, bad input and the GPU."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image

from mtlface.data.preprocess import CropSpec, MTCNNDetector, Skipped
from mtlface.data.preprocess.cache import cache_settings, settings_key
from mtlface.data.preprocess.mtcnn import backends, networks
from mtlface.data.preprocess.mtcnn.cascade import (
    Candidates,
    content_extents,
    extent_groups,
    nms,
    nms_min,
    pyramid_scales,
    window_span,
)
from mtlface.data.preprocess.mtcnn.resample import area_resample, integral_images, resize_area
from mtlface.errors import ConfigError, UserError
from mtlface.predict.faces import FaceFinder, FaceSettings

BOX_PX, LANDMARK_PX, PROB = 2.0, 2.0, 1e-3  # parity tolerances
# The cascade repeats facenet-pytorch's arithmetic, so it lands far closer than the tolerance:
# a slip in a regression or a crop edge moves boxes by tenths of a pixel, which this catches.
SAME_ARITHMETIC_PX = 0.05


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(autouse=True)
def _isolated_onnx_cache(onnx_cache, monkeypatch):
    """Exports go to one folder per test session (made once), never the user's cache."""
    monkeypatch.setattr(networks, "cache_dir", lambda: onnx_cache)


@pytest.fixture(scope="module")
def photos(grace_hopper) -> dict[str, np.ndarray]:
    skimage = pytest.importorskip("skimage.data")
    astronaut = skimage.astronaut()
    return {"astronaut": astronaut, "grace_hopper": grace_hopper,
            "astronaut_mirrored": np.ascontiguousarray(astronaut[:, ::-1])}


def canvases(photos, size=320) -> np.ndarray:
    detector = MTCNNDetector(detect_size=size)
    return np.stack([detector._canvas(p)[0] for p in photos.values()])


def detect_both(batch: np.ndarray, **settings):
    args = (settings.get("min_face_size", 20), settings.get("thresholds", (0.6, 0.7, 0.7)),
            settings.get("factor", 0.709))
    ours = backends.onnx_mtcnn(*args).detect(batch, landmarks=True)
    theirs = backends.torch_mtcnn(*args).detect(batch, landmarks=True)
    return ours, theirs


def differences(ours, theirs) -> dict[str, float]:
    """Largest box, landmark and probability differences over a batch; asserts the same
    number of faces per image (facenet-pytorch gives None for none)."""
    worst = {"box": 0.0, "landmark": 0.0, "prob": 0.0, "faces": 0}
    for boxes, probs, points, t_boxes, t_probs, t_points in zip(*ours, *theirs):
        if t_boxes is None:
            assert len(boxes) == 0
            continue
        assert len(boxes) == len(t_boxes)
        worst["faces"] += len(boxes)
        worst["box"] = max(worst["box"], float(np.abs(boxes - t_boxes).max()))
        worst["landmark"] = max(worst["landmark"], float(np.abs(points - t_points).max()))
        worst["prob"] = max(worst["prob"],
                            float(np.abs(probs - np.asarray(t_probs, float)).max()))
    return worst


@pytest.mark.parametrize("size", [320, 160])
def test_same_faces_as_facenet_pytorch_on_real_photos(photos, size):
    ours, theirs = detect_both(canvases(photos, size))
    worst = differences(ours, theirs)
    assert worst["faces"] >= len(photos)  # every photo has its face
    assert worst["box"] <= BOX_PX and worst["landmark"] <= LANDMARK_PX
    assert worst["prob"] <= PROB
    assert max(worst["box"], worst["landmark"]) <= SAME_ARITHMETIC_PX


def test_same_faces_with_other_settings_and_at_full_resolution(photos):
    """A looser P-Net threshold (many more candidates) and a non-square full-size photo."""
    ours, theirs = detect_both(canvases(photos), min_face_size=40,
                               thresholds=(0.5, 0.6, 0.6), factor=0.6)
    assert differences(ours, theirs)["box"] <= BOX_PX
    hopper = photos["grace_hopper"][None]
    worst = differences(*detect_both(hopper))
    assert worst["faces"] == 1 and worst["box"] <= BOX_PX and worst["prob"] <= PROB


def test_zero_padding_is_skipped_without_changing_a_proposal(photos):
    """Canvases of non-square photos are partly zero padding, which P-Net skips: the proposals
    must be exactly those of the whole pyramid, and the faces those of facenet-pytorch."""
    wide = np.concatenate([photos["astronaut"], photos["grace_hopper"][:512]], axis=1)
    cascade = backends.onnx_mtcnn(20, (0.6, 0.7, 0.7), 0.709).cascade
    assert cascade.blank_windows_pass()
    for photo in (wide, photos["grace_hopper"]):
        batch = canvases({"photo": photo})
        integral = integral_images(batch)
        extent = tuple(content_extents(batch)[0])
        filled_rows = np.flatnonzero(batch.any(axis=(0, 2, 3)))
        filled_cols = np.flatnonzero(batch.any(axis=(0, 1, 3)))
        assert extent == (filled_rows[-1] + 1, filled_cols[-1] + 1)
        assert min(extent) < 320  # there is padding to skip
        blank = cascade.pnet(np.zeros((1, 3, 12, 12), np.float32))[1][0, -1, 0, 0]
        for scale in pyramid_scales(320, 320, 20, 0.709):
            size = int(320 * scale + 1), int(320 * scale + 1)
            rows, cols = window_span(size[0], 320, extent[0]), window_span(size[1], 320, extent[1])
            whole = cascade.pnet(resize_area(integral, *size))[1][:, -1]
            seen = cascade.pnet(resize_area(integral, *size, rows, cols))[1][:, -1]
            h, w = seen.shape[1:]
            np.testing.assert_allclose(seen, whole[:, :h, :w], rtol=0, atol=1e-6)
            beyond = np.concatenate([whole[:, h:].ravel(), whole[:, :h, w:].ravel()])
            np.testing.assert_allclose(beyond, blank, rtol=0, atol=1e-6)  # blank windows only
        skipped = cascade._proposals(integral, 320, 320, extent)
        everything = cascade._proposals(integral, 320, 320, (320, 320))
        np.testing.assert_array_equal(skipped.boxes, everything.boxes)
        np.testing.assert_array_equal(skipped.scores, everything.scores)
        worst = differences(*detect_both(batch))
        assert worst["faces"] >= 1 and worst["box"] <= SAME_ARITHMETIC_PX


def test_a_batch_of_wide_tall_square_and_blank_canvases_runs_p_net_per_extent_group(photos):
    """P-Net runs once per group of images whose content extents round to the same eighth of
    the canvas, over the group's extent: each image keeps the faces it has alone, which are
    facenet-pytorch's, and the faces come back in the batch's order."""
    wide = np.concatenate([photos["astronaut"], photos["grace_hopper"][:512]], axis=1)
    batch = canvases({"tall": photos["grace_hopper"], "wide": wide,
                      "square": photos["astronaut"], "blank": np.zeros((64, 64, 3), np.uint8)})
    extents = content_extents(batch)
    assert extents[0, 0] == 320 > extents[0, 1] and extents[1, 1] == 320 > extents[1, 0]
    assert tuple(extents[2]) == (320, 320) and tuple(extents[3]) == (0, 0)
    groups = extent_groups(extents, 320, 320)
    assert sorted(np.concatenate([m for m, _ in groups]).tolist()) == [0, 1, 2, 3]
    assert len(groups) == 4
    for members, extent in groups:
        assert (extents[members] <= extent).all()
    cascade = backends.onnx_mtcnn(20, (0.6, 0.7, 0.7), 0.709).cascade
    together = cascade.detect(batch)
    for i, faces in enumerate(together):
        alone = cascade.detect(batch[i: i + 1])[0]
        for a, b in zip(faces, alone):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    assert [len(f[0]) for f in together] == [1, 2, 1, 0]
    worst = differences(*detect_both(batch))
    assert worst["box"] <= SAME_ARITHMETIC_PX and worst["prob"] <= PROB


def test_detector_backends_choose_the_same_face(photos):
    images = list(photos.values())
    onnx = MTCNNDetector().detect(images, [{}] * len(images))
    torch_ = MTCNNDetector(backend="torch").detect(images, [{}] * len(images))
    for a, b in zip(onnx, torch_):
        assert not isinstance(a, Skipped) and not isinstance(b, Skipped)
        assert np.abs(np.subtract(a.box, b.box)).max() <= BOX_PX
        assert abs(a.score - b.score) <= PROB and a.num_faces == b.num_faces


def test_area_resample_matches_torch_area_interpolation():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    integral = integral_images(images)
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    regions = [(0, 3, 40, 5, 60), (1, 0, 50, 0, 70), (1, 10, 13, 20, 22), (0, 7, 8, 9, 10)]
    index, y0, y1, x0, x1 = (np.array(v) for v in zip(*regions))
    for size in (24, 48):
        ours = area_resample(integral, index, y0, y1, x0, x1, size, size)
        for k, (b, ya, yb, xa, xb) in enumerate(regions):
            ref = torch.nn.functional.interpolate(tensor[b:b + 1, :, ya:yb, xa:xb],
                                                  size=(size, size), mode="area")
            np.testing.assert_allclose(ours[k], ref[0].numpy(), rtol=0, atol=1e-4)
    for h, w in ((31, 43), (12, 12), (60, 90)):  # pyramid levels, smaller and larger
        ref = torch.nn.functional.interpolate(tensor, size=(h, w), mode="area").numpy()
        np.testing.assert_allclose(resize_area(integral, h, w), ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize("integer_boxes", [True, False])
def test_nms_keeps_what_torchvisions_batched_nms_keeps(integer_boxes):
    """OpenCV's NMS in the cascade against torchvision's, which facenet-pytorch calls: the
    same boxes in the same order, with many equal scores (a stable sort) and several images
    (P-Net's boxes are whole pixels, the later stages' are not)."""
    from torchvision.ops import batched_nms

    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(2, 300))
        corner = rng.integers(0, 60, (n, 2)).astype(np.float32)
        boxes = np.concatenate([corner, corner + rng.integers(5, 25, (n, 1))], axis=1)
        boxes = boxes.astype(np.float32)
        if not integer_boxes:
            boxes += rng.random((n, 4)).astype(np.float32)
        scores = rng.choice([0.6, 0.7, 0.9, 1.0], n).astype(np.float32)
        image = rng.integers(0, 3, n)
        threshold = float(rng.choice([0.5, 0.7]))
        theirs = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                             torch.from_numpy(image), threshold).numpy()
        np.testing.assert_array_equal(nms(Candidates(boxes, scores, image), threshold), theirs)


def test_min_nms_keeps_what_facenet_pytorch_keeps():
    from facenet_pytorch.models.utils.detect_face import batched_nms_numpy

    rng = np.random.default_rng(1)
    corner = rng.uniform(0, 200, (300, 2)).astype(np.float32)
    side = rng.uniform(10, 80, (300, 1)).astype(np.float32)
    boxes = np.concatenate([corner, corner + side], axis=1)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    image = rng.integers(0, 3, 300)
    ours = nms_min(Candidates(boxes, scores, image), 0.7)
    theirs = batched_nms_numpy(torch.from_numpy(boxes), torch.from_numpy(scores),
                               torch.from_numpy(image), 0.7, "Min").numpy()
    assert 0 < len(ours) < 300
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("net", networks.NETS)
def test_exported_networks_compute_what_facenet_pytorchs_do(net):
    """The export pools before the first PReLU, rewrites the others and pads channels for
    speed: the outputs must not move. The first PReLUs of facenet-pytorch's weights have
    slopes below 0, between 0 and 1 and (P- and R-Net) above 1, so every case of the pooled
    PReLU is met; an odd input size meets the pools' partial windows."""
    from facenet_pytorch.models import mtcnn as facenet

    module = {"pnet": facenet.PNet, "rnet": facenet.RNet, "onet": facenet.ONet}[net]().eval()
    size = {"pnet": 37, "rnet": 24, "onet": 48}[net]
    pixels = np.random.default_rng(2).uniform(0, 255, (5, 3, size, size)).astype(np.float32)
    ours = networks.session(net).run(None, {"image": pixels})  # takes pixel values
    with torch.no_grad():
        theirs = module(torch.from_numpy((pixels - 127.5) / 128))
    if net == "pnet":  # its prob: the face channel alone
        theirs = (theirs[0], theirs[1][:, 1:])
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=1e-4)


def test_networks_are_exported_once_and_again_for_other_weights_or_exporter(
        onnx_cache, monkeypatch):
    networks.session("rnet")
    path = networks.model_path("rnet")
    assert path.is_file()

    def no_export(net):
        raise AssertionError("exported again although the cached file is current")

    with monkeypatch.context() as m:
        m.setattr(networks, "export", no_export)
        networks.session("rnet")
    monkeypatch.setattr(networks, "EXPORT_FORMAT", networks.EXPORT_FORMAT + 1)
    assert networks.model_path("rnet") != path  # a new exporter names a new file
    networks.session("rnet")
    assert networks.model_path("rnet").is_file()
    assert not list(onnx_cache.glob("*.part"))  # written atomically: no temp file left


def test_a_corrupt_cached_network_is_exported_again_with_a_warning(caplog):
    path = networks.model_path("onet")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an onnx file")
    with caplog.at_level(logging.WARNING, logger=networks.__name__):
        session = networks.session("onet")
    assert "does not load" in caplog.text and "exporting it again" in caplog.text
    assert path.stat().st_size > 1000
    out = session.run(None, {"image": np.zeros((2, 3, 48, 48), np.float32)})
    assert [o.shape for o in out] == [(2, 4), (2, 10), (2, 2)]


def test_an_unwritable_cache_folder_keeps_the_export_in_memory(tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the folder would go
    monkeypatch.setattr(networks, "cache_dir", lambda: blocked / "mtcnn")
    with caplog.at_level(logging.WARNING, logger=networks.__name__):
        networks.session("pnet")
    assert "kept in memory" in caplog.text


def test_backend_is_a_config_choice_left_out_of_the_cache_key(tmp_path):
    from hydra.utils import instantiate
    from test_preprocess import compose_preprocess

    default = compose_preprocess(["detector=mtcnn"], tmp_path)
    chosen = compose_preprocess(["detector=mtcnn", "detector.backend=torch"], tmp_path)
    assert instantiate(default.detector).backend == "onnx"
    assert instantiate(chosen.detector).backend == "torch"
    source = {"_target_": "x", "root": str(tmp_path)}
    keys = {settings_key(cache_settings(source, dict(cfg.detector), CropSpec()))
            for cfg in (default, chosen)}
    assert len(keys) == 1
    with pytest.raises(ConfigError, match="detector.backend must be one of"):
        MTCNNDetector(backend="tensorflow")


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_tiny_black_grey_and_rgba_images(photos, backend):
    detector = MTCNNDetector(backend=backend)
    astronaut = photos["astronaut"]
    grey = np.asarray(Image.fromarray(astronaut).convert("L"))
    rgba = np.concatenate([astronaut, np.full(astronaut.shape[:2] + (1,), 255, np.uint8)], 2)
    images = [np.zeros((1, 1, 3), np.uint8), np.zeros((300, 400, 3), np.uint8), grey,
              grey[:, :, None], rgba]
    tiny, black, *faces = detector.detect(images, [{}] * len(images))
    assert tiny == Skipped("image too small for detection")
    assert black == Skipped("no face found")
    assert all(not isinstance(f, Skipped) and f.score > 0.99 for f in faces)
    finder = FaceFinder(FaceSettings({"backend": backend}))
    assert finder.find_all(images[:2]) == [[], []]
    with pytest.raises(UserError, match="uint8") as error:
        detector.detect([astronaut.astype(np.float32)], [{}])
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_an_image_smaller_than_the_smallest_face_is_a_skip(backend):
    """At full resolution (``detect_size: null``) a 15 px image has no pyramid level for
    20 px faces: a counted skip, and no faces for the finder."""
    small = np.full((15, 40, 3), 128, np.uint8)
    detector = MTCNNDetector(detect_size=None, backend=backend)
    assert detector.detect([small], [{}]) == [Skipped("image smaller than "
                                                      "detector.min_face_size")]
    finder = FaceFinder(FaceSettings({"backend": backend, "detect_size": None}))
    assert finder.find(small) == []
    cascade = backends.onnx_mtcnn(20, (0.6, 0.7, 0.7), 0.709).cascade
    boxes, probs, points = cascade.detect(small[None])[0]
    assert boxes.shape == (0, 4) and probs.shape == (0,) and points.shape == (0, 5, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_the_gpu_the_same_faces(photos):
    batch = canvases(photos)
    gpu = backends.onnx_mtcnn(20, (0.6, 0.7, 0.7), 0.709, device="cuda")
    if backends.cuda_provider_ready("cuda"):
        assert gpu.providers[0] == backends.CUDA_PROVIDER
    else:  # no CUDA provider in onnxruntime: facenet-pytorch on the GPU
        assert next(gpu.pnet.parameters()).is_cuda
    cpu = backends.torch_mtcnn(20, (0.6, 0.7, 0.7), 0.709).detect(batch, landmarks=True)
    worst = differences(gpu.detect(batch, landmarks=True), cpu)
    assert worst["box"] <= BOX_PX and worst["prob"] <= PROB
    assert not math.isnan(worst["landmark"])


def test_detection_benchmark_part_compares_and_breaks_down():
    from benchmarks import detection

    rows = detection.run(detection.QUICK)
    head, *stages = rows
    assert head.at_least == detection.TARGET and head.value > 0 and head.ref_value > 0
    ours = [r for r in stages if r.measured.startswith("onnx cascade")]
    theirs = [r for r in stages if r.measured.startswith("facenet-pytorch")]
    assert {r.measured.split(": ")[1].split(",")[0] for r in ours} >= {"pnet", "rnet", "onet"}
    assert len(theirs) == 3
    # The stages account for the cascade's time: nothing large is left out of the breakdown.
    assert 0.7 * ours[0].ref_value <= sum(r.value for r in ours) <= 1.01 * ours[0].ref_value
