"""notebooks/ execute headless (nbclient) against a tiny real sweep and draw their figures."""

import json
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT
from test_sweeps import run_tiny_sweep

pytestmark = pytest.mark.integration  # subprocess-heavy: .ci/run's second tier

NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory, data_dir):
    return run_tiny_sweep(tmp_path_factory.getbasetemp(), data_dir)


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A kernelspec for this interpreter (the venv's), visible to this test only."""
    spec = tmp_path / "jupyter/kernels/mtlface-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mtlface test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws PNGs
    return "mtlface-test"


def execute(name: str, kernel: str) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells), f"{name}: commit it with outputs cleared"
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    NotebookClient(nb, timeout=180, kernel_name=kernel,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()  # raises on error
    return nb


def outputs(nb, mime: str) -> list[str]:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code"
            for o in c.outputs if mime in o.get("data", {})]


def test_runs_notebook_plots_curves_and_final_metrics(tiny_sweep, kernel, monkeypatch):
    monkeypatch.setenv("MTLFACE_RUNS", str(tiny_sweep))
    nb = execute("runs", kernel)
    assert len(outputs(nb, "image/png")) == 2  # learning curves, final metrics
    tables = "".join(outputs(nb, "text/html"))
    assert "tiny_sweep/2" in tables and "failed" in tables


def test_compare_sweep_notebook_draws_the_summary(tiny_sweep, kernel, monkeypatch):
    monkeypatch.setenv("MTLFACE_SWEEP", str(tiny_sweep))
    nb = execute("compare_sweep", kernel)
    assert len(outputs(nb, "image/png")) == 1
    table = outputs(nb, "text/markdown")[0]
    summary_md = (tiny_sweep / "summary.md").read_text()
    assert table.splitlines()[2] in summary_md and " ± " in table  # the sweep's own table rows
