"""The Adience-era backbones end to end: their 227-from-256 crop pipeline and short runs."""

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from conftest import TINY_SOURCES, compose_train
from mtlface.backbones import InputSpec
from mtlface.data.transforms import build_transform
from mtlface.train import run

CROP = InputSpec(227, 3, (0.0,) * 3, (1.0,) * 3, resize=256)  # identity normalisation


def _image(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (120, 100, 3), dtype=np.uint8)


def _pixels(tensor):
    return (tensor.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def test_eval_pipeline_is_the_centre_227_crop_of_the_256_resize():
    image = _image()
    out = build_transform(CROP, train=False)(image=image)["image"]
    resized = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
    offset = (256 - 227) // 2
    assert np.array_equal(_pixels(out), resized[offset:offset + 227, offset:offset + 227])


def test_train_pipeline_crops_at_random_and_repeatably_by_seed():
    image = _image()

    def crops(seed):
        tf = build_transform(CROP, train=True, seed=seed)
        return [tf(image=image)["image"] for _ in range(4)]

    first, again = crops(1), crops(1)
    assert all(c.shape == (3, 227, 227) for c in first)
    assert any(not torch.equal(a, b) for a, b in zip(first, first[1:]))  # random crops
    assert all(torch.equal(a, b) for a, b in zip(first, again))          # seeded


def test_the_stage_not_the_augmentation_picks_the_crop():
    """``data.augment=[]`` still trains on random crops; evaluation with augmentation listed
    would still be centred (the DataModule passes ``train`` per stage)."""
    image = _image()
    centre = build_transform(CROP, train=False)(image=image)["image"]
    plain_train = build_transform(CROP, seed=0, train=True)
    assert any(not torch.equal(plain_train(image=image)["image"], centre) for _ in range(4))
    augmented_eval = build_transform(CROP, [A.HorizontalFlip(p=0.0)], train=False)
    assert all(torch.equal(augmented_eval(image=image)["image"], centre) for _ in range(3))


def test_no_resize_means_straight_resize_for_both_stages():
    spec = InputSpec(48, 1, (0.5,), (0.5,))
    image = _image()[:, :, :1]
    train, val = (build_transform(spec, train=t)(image=image)["image"] for t in (True, False))
    assert train.shape == val.shape == (1, 48, 48) and torch.equal(train, val)


# Age + gender, the tasks these readouts and heads serve: debug=fast evaluates one batch,
# interleaved over the two sources that label them (imdb_like, utk_like), so both are evaluated.
@pytest.mark.parametrize("overrides", [
    ["backbone=lmtcnn"],
    ["backbone=levi_hassner", "head=linear"],
    ["backbone=lmtcnn_2_1", "tasks.age.readout=ordinal"],
    ["tasks.age.readout=argmax", "tasks.gender.head.hidden=[]"],
], ids=["lmtcnn", "levi_hassner-linear", "lmtcnn_2_1-ordinal", "bknet-argmax"])
def test_fast_debug_run_age_gender(data_dir, tmp_path, overrides):
    cfg = compose_train([*TINY_SOURCES, "debug=fast", "tasks=[age,gender]", *overrides],
                        output_dir=tmp_path)
    results = run(cfg)
    for stage in ("val", "test"):
        for task in cfg.tasks:
            assert f"{stage}/{task}/loss" in results, (stage, task)
        for metric in ("acc", "acc_1off", "mae"):
            assert np.isfinite(results[f"{stage}/age/{metric}"])
