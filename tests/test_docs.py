"""The README stays a ten-minute read, the docs site builds without a warning, and neither
speaks of how or when the work was done."""

import os
import re
import subprocess
import sys

from conftest import ROOT

README_MAX_LINES = 250


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES


def test_docs_site_builds_strictly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
    # The API page is read from the docstrings (mkdocstrings), not written by hand.
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("runs.RunFolder", "predict.Predictor", "data.datamodule.MultiSourceDataModule",
                 "module.MTLFaceModule", "tasks.Task", "data.preprocess.crop.CropSpec"):
        assert f'id="mtlface.{name}"' in api, name
    assert "Paths are computed, not checked" in api  # RunFolder's docstring


def test_the_product_speaks_of_the_product():
    pattern = re.compile(r"this session|earlier figure|seed system", re.I)
    texts = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "mtlface").rglob("*.py"),
             *(ROOT / "conf").rglob("*.yaml")]
    found = [f"{p.relative_to(ROOT)}:{i}" for p in texts
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, found
