import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

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
