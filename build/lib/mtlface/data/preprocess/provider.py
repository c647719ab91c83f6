"""``PreprocessedCache``: the DataModule's view of a preprocessing cache. It finds the cache
made with the given source, detector and crop settings, and when there is none it says what
to download, where to put it and which ``preprocess.py`` command makes the cache."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from mtlface.data.preprocess.cache import CacheLayout, cache_settings, settings_key
from mtlface.data.preprocess.crop import CropSpec


class MissingCacheError(FileNotFoundError):
    """No preprocessed cache for these settings (or no dataset to make it from)."""


def plain(cfg: Mapping | DictConfig | None) -> dict[str, Any]:
    """A resolved plain dict of a config node (or of a dict)."""
    if cfg is None:
        return {}
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def cache_folder(cache_dir: str | os.PathLike, source: Mapping, detector: Mapping,
                 crop: CropSpec) -> tuple[Path, dict[str, Any]]:
    """``<cache_dir>/<source name>/<key>`` and the settings the key hashes. The name is the
    reader's ``source`` option, or its default name."""
    settings = cache_settings(source, detector, crop)
    name = source.get("source") or get_class(source["_target_"]).name
    return Path(cache_dir) / name / settings_key(settings), settings


class PreprocessedCache:
    """A manifest provider (see ``MultiSourceDataModule``) for one preprocessed source.
    ``source`` and ``detector`` are the same config nodes ``preprocess.py`` uses
    (conf/source/*.yaml, conf/detector/*.yaml); ``crop`` holds ``CropSpec`` fields (omitted
    ones take its defaults). Hydra must pass them as configs: ``_recursive_: false``."""

    def __init__(self, cache_dir: str | os.PathLike, source: Mapping, detector: Mapping,
                 crop: Mapping | None = None) -> None:
        self.source = plain(source)
        self.detector = plain(detector)
        self.crop = CropSpec(**plain(crop))
        self.folder, self.settings = cache_folder(cache_dir, self.source, self.detector,
                                                  self.crop)
        self.cache_dir = Path(cache_dir)

    def prepare(self) -> Path:
        layout = CacheLayout(self.folder)
        if layout.manifest.is_file():
            return layout.manifest
        raise MissingCacheError(self.explain())

    def command(self) -> str:
        """The ``preprocess.py`` command that makes this cache."""
        reader_cls = get_class(self.source["_target_"])
        defaults = asdict(CropSpec())
        crop = [f"crop.{f.name}={_value(getattr(self.crop, f.name))}" for f in fields(CropSpec)
                if getattr(self.crop, f.name) != defaults[f.name]]
        args = [f"source={self.source.get('source') or reader_cls.name}",
                f"source.root={self.source.get('root')}",
                f"detector={get_class(self.detector['_target_']).config_name}",
                f"cache_dir={self.cache_dir}", *crop]
        return "python preprocess.py " + " ".join(args)

    def explain(self) -> str:
        reader = instantiate(self.source)  # the constructor only checks options: cheap
        name = self.source.get("source") or reader.name
        how = f"then run:\n  {self.command()}\n(with the same detector.* and source.* " \
              f"settings as this data config, so the cache key matches)"
        if not reader.root.exists():
            return (f"{reader.title} ({name}) not found at {reader.root}. "
                    f"{reader.download_hint} Set its location with "
                    f"data.manifests.{name}.source.root=... (or MTLFACE_RAW_DIR), {how}")
        shards = sorted(p.name for p in (self.folder / "shards").glob("*") if p.is_dir())
        if shards:
            return (f"the {name} cache {self.folder} is not finished (shards started: "
                    f"{shards}): finish every shard, or merge copied shards with "
                    f"`merge=true`; {how}")
        others = sorted(p.name for p in (self.cache_dir / name).glob("*") if
                        (p / "manifest.csv").is_file())
        seen = f" (caches with other settings exist: {others})" if others else ""
        return (f"no preprocessed {name} cache for these settings at {self.folder}{seen}; "
                f"the dataset is at {reader.root}, {how}")


def _value(v: Any) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
