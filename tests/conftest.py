import copy
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"

# Small synthetic sources: generated once per test session (cached by settings hash).
TINY_SOURCES = (
    "data.manifests.synthetic.sources.imdb_like.splits={train:480,val:160,test:160}",
    "data.manifests.synthetic.sources.utk_like.splits={train:320,val:160,test:160}",
    "data.manifests.synthetic.sources.genki_like.splits={train:320,val:160,test:160}",
    "data.manifests.synthetic.sources.fer_like.splits={train:480,val:160,test:160}",
)

# A narrow BKNet at 32 px: the same pipeline end to end, ~10x cheaper per image than the
# published 48 px one, so a test can afford the samples every task needs to take off.
SMALL_BKNET = (
    "backbone.widths=[16,32,64,128]",
    "backbone.input_size=32",
    "head.hidden=[64]",
    "head.dropout=0.0",
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One data dir per test session, so the synthetic cache is generated once."""
    path = tmp_path_factory.mktemp("data")
    os.environ["MTLFACE_DATA_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def astronaut(tmp_path_factory) -> Path:
    """A real photo with one face (public domain, shipped in scikit-image), as a JPEG file."""
    from PIL import Image

    skimage_data = pytest.importorskip("skimage.data")
    path = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(path, quality=92)
    return path


@pytest.fixture(scope="session")
def grace_hopper():
    """A real photo with one face (public domain, shipped in matplotlib), RGB uint8."""
    import numpy as np
    from PIL import Image

    cbook = pytest.importorskip("matplotlib.cbook")
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def compose_train(overrides=(), output_dir: Path | None = None):
    """The train config as `python train.py <overrides>` would see it, with the hydra node
    set so ${hydra:...} interpolations resolve outside @hydra.main."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
    cfg.hydra.runtime.cwd = str(ROOT)
    HydraConfig.instance().set_config(cfg)
    return cfg


def save_like_hydra(cfg, out_dir: Path) -> None:
    """What @hydra.main leaves in a run folder: the composed config without the hydra node,
    interpolations unresolved."""
    task_cfg = copy.deepcopy(cfg)
    with open_dict(task_cfg):
        del task_cfg["hydra"]
    (out_dir / ".hydra").mkdir(exist_ok=True)
    (out_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(task_cfg))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, data_dir) -> Path:
    """A real run folder (config, Lightning checkpoints, results.json with Lightning's own val
    and test of the best checkpoint) from three training steps on the tiny synthetic sources,
    made once per session for the inference, export, demo and evaluation tests."""
    from mtlface.train import run

    out = tmp_path_factory.mktemp("run")
    cfg = compose_train([*TINY_SOURCES, *SMALL_BKNET, "trainer.max_epochs=1",
                         "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
                         "trainer.log_every_n_steps=1", "trainer.accelerator=cpu", "logger=csv"],
                        output_dir=out)
    run(cfg)
    save_like_hydra(cfg, out)
    return out
