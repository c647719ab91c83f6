"""Training on preprocessed real caches: data= configs, per-task balancing, re-splitting
(folds, cross-dataset test) and the message for a missing dataset or cache."""

from __future__ import annotations

import pandas as pd
import pytest
from hydra.utils import instantiate

import fixtures_real as fx
from conftest import compose_train
from mtlface.backbones import InputSpec
from mtlface.data.datamodule import MultiSourceDataModule
from mtlface.data.manifest import write_manifest
from mtlface.data.preprocess import MissingCacheError
from mtlface.train import run
from test_preprocess import preprocess

GREY32 = InputSpec(channels=1, size=32, mean=(0.5,), std=(0.5,))


@pytest.fixture()
def data_env(tmp_path, monkeypatch):
    """Raw fixtures and the cache under tmp_path; train.py's data dir pointed there."""
    monkeypatch.setenv("MTLFACE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_fast_training_run_on_a_utk_fer_cache_mix(data_env, tmp_path):
    utk = fx.write_utkface(tmp_path / "raw" / "utk")
    fer = fx.write_fer2013(tmp_path / "raw" / "fer")
    cache = f"cache_dir={tmp_path / 'data' / 'preprocessed'}"
    preprocess(tmp_path, "source=utkface", f"source.root={utk}", "detector=none", cache)
    preprocess(tmp_path, "source=fer2013", f"source.root={fer}", "detector=none", cache,
               "crop.size=48")
    cfg = compose_train(["data=utk_fer", "tasks=[age,gender,race,emotion]", "debug=fast",
                         f"data.manifests.utkface.source.root={utk}",
                         f"data.manifests.fer2013.source.root={fer}", "data.num_workers=0"],
                        output_dir=tmp_path / "run")
    results = run(cfg)
    for task in ("age", "gender", "race", "emotion"):
        assert f"test/{task}/acc" in results


def test_missing_dataset_and_missing_cache_say_what_to_do(data_env, tmp_path):
    cfg = compose_train(["data=utkface", "tasks=[age]",
                         f"data.manifests.utkface.source.root={tmp_path / 'nowhere'}"])
    dm = instantiate(cfg.data, tasks=["age"], input_spec=GREY32)
    with pytest.raises(MissingCacheError, match=r"(?s)UTKFace .*not found.*susanqq.*"
                                                r"python preprocess.py source=utkface"):
        dm.prepare_data()
    fer = fx.write_fer2013(tmp_path / "fer")
    cfg = compose_train(["data=fer2013", "tasks=[emotion]",
                         f"data.manifests.fer2013.source.root={fer}"])
    dm = instantiate(cfg.data, tasks=["emotion"], input_spec=GREY32)
    with pytest.raises(MissingCacheError, match=r"no preprocessed fer2013 cache.*\n.*"
                                                r"detector=none .*crop.size=48"):
        dm.prepare_data()


def _manifest(folder, sources: dict[str, tuple[int, dict]], extra=None) -> str:
    rows = []
    for source, (n, labels) in sources.items():
        for i in range(n):
            rows.append({"path": f"{source}/{i}.png", "source": source,
                         "split": ("train", "val", "test")[i % 3], **labels,
                         **(extra(i) if extra else {})})
            (folder / source).mkdir(parents=True, exist_ok=True)
            fx.touch_image(folder / source / f"{i}.png")
    write_manifest(pd.DataFrame(rows), folder)
    return str(folder)


def test_balance_tasks_gives_each_task_an_equal_part(tmp_path):
    path = _manifest(tmp_path, {"faces": (90, {"age": 30, "gender": 1}),
                                "smiles": (30, {"smile": 1}), "genders": (60, {"gender": 0})})
    kwargs = dict(tasks=["age", "gender", "smile"], input_spec=GREY32, batch_size=20)
    plain = MultiSourceDataModule({"m": path}, **kwargs)
    plain.setup()
    assert plain.train_batch_sizes() == {"faces": 7, "genders": 7, "smiles": 7}
    balanced = MultiSourceDataModule({"m": path}, balance_tasks=True, **kwargs)
    balanced.setup()
    sizes = balanced.train_batch_sizes()
    # age only from faces, smile only from smiles: equal parts; gender is already covered
    # by faces, so the gender-only source keeps just the floor.
    assert sizes["faces"] == sizes["smiles"] == 10 and sizes["genders"] == 1


def test_fold_and_split_map_resplit_sources(tmp_path):
    path = _manifest(tmp_path, {"adience": (25, {"age": 30}), "utk": (9, {"age": 20})},
                     extra=lambda i: {"fold": i % 5})
    dm = MultiSourceDataModule({"m": path}, ["age"], GREY32, fold=2,
                               split_map={"utk": {"train": "test", "val": "test"}})
    dm.setup()
    assert len(dm.datasets["test"]["adience"]) == 5 and len(dm.datasets["val"]["adience"]) == 5
    assert len(dm.datasets["train"]["adience"]) == 15
    assert "utk" not in dm.datasets["train"] and len(dm.datasets["test"]["utk"]) == 9
    with pytest.raises(ValueError, match="data.fold=7"):
        bad = MultiSourceDataModule({"m": path}, ["age"], GREY32, fold=7)
        bad.setup()
