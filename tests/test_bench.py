"""The benchmark suite: its table, its timing helpers, the packed image cache and the module
change it measures. No timing assertions: only that every figure exists and the ratios are the
ones the measured columns give."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from benchmarks.cli import main
from benchmarks.table import COLUMNS, Row, markdown
from benchmarks.timing import Timing, interleaved
from benchmarks.workload import datamodule, train_config
from benchmarks.packed import PackedDataset, stored_size
from mtlface.data.transforms import build_transform

from conftest import ROOT, TINY_SOURCES

pytestmark = pytest.mark.integration  # subprocess-heavy: .ci/run's second tier

# (part, measured) of every row the cheap parts give in --quick, in order.
CHEAP_PARTS = "overhead,preprocess,inference,scaling,weighting"
EXPECTED = [
    *[("overhead", "Lightning epoch, images/s")] * 2,
    ("preprocess", "MTCNN stage, images/s"), ("preprocess", "fully cached re-run, s"),
    *[("inference", "ONNX Runtime, faces/s")] * 2,
    ("scaling", "training, images/s"), ("scaling", "inference, faces/s"),
    ("weighting", "weighting=upgrad, images/s"),
]
_LOADERS = [("pipeline", "train loader delivers, images/s"),
            ("pipeline", "train loader in the training process (num_workers=0, the conf "
                         "default), images/s")]
_PACKED = [("pipeline", "packed train loader delivers, images/s")] * 2
PIPELINE = [*_LOADERS, *_LOADERS, *_PACKED, *_LOADERS, *_LOADERS, *_PACKED]


def parse_table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
            for line in lines[1:]]


def run_bench(args, data_dir, tmp_path) -> tuple[str, list[dict[str, str]]]:
    out = tmp_path / "results.md"
    env = {**os.environ, "MTLFACE_DATA_DIR": str(data_dir)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick",
                           "--threads", "1", "--out", str(out), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert text in proc.stdout  # printed and saved alike
    return text, parse_table(text)


def check_rows(rows, expected):
    assert [(r["part"], r["measured"]) for r in rows] == expected
    for r in rows:
        value, ref, ratio = (float(r[k]) for k in ("value", "reference value", "ratio"))
        assert all(math.isfinite(x) and x > 0 for x in (value, ref, ratio)), r
        # Each cell has 3 significant figures: the ratio agrees with the columns to ~0.2 %.
        assert ratio == pytest.approx(value / ref, rel=0.01), r
        low, high = (float(x) for x in r["ratio range over repeats"].split(".."))
        assert 0 < low <= high, r
        if r["target"]:
            bound = float(r["target"].split()[1])
            assert r["meets"] == ("yes" if ratio >= bound else "**no**"), r


def test_quick_suite_gives_every_row_with_ratios_of_its_columns(data_dir, tmp_path):
    text, rows = run_bench(["--parts", CHEAP_PARTS, "--clock", "cpu"], data_dir, tmp_path)
    check_rows(rows, EXPECTED)
    for key in ("torch.get_num_threads() = 1", "cpu:", "load average (1/5/15 min):",
                "clock: process CPU time", "--quick"):
        assert key in text


@pytest.mark.slow
def test_quick_pipeline_part(data_dir, tmp_path):
    _, rows = run_bench(["--parts", "pipeline"], data_dir, tmp_path)
    check_rows(rows, PIPELINE)


def test_unknown_part_is_refused_with_the_valid_ones(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--parts", "overhed", "--out", str(tmp_path / "x.md")])
    assert exc.value.code == 2
    assert "unknown part(s) ['overhed']; valid: overhead,pipeline" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()


def test_interleaved_alternates_the_order_and_takes_medians():
    calls = []
    timings = interleaved({"a": lambda: calls.append("a") or 1.0,
                           "b": lambda: calls.append("b") or 3.0},
                          repeats=3, warmup=1, items={"a": 10, "b": 30})
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then AB BA AB
    assert timings["a"].seconds == (1.0, 1.0, 1.0) and timings["b"].per_s == 10.0
    assert Timing((1.0, 5.0, 2.0), items=4).median == 2.0
    with pytest.raises(TypeError, match="its own seconds"):
        interleaved({"a": lambda: 3}, repeats=1, warmup=0)


def test_row_ratio_and_target():
    row = Row("p", "c", "x/s", 2.0, "y/s", 4.0, at_least=0.95)
    assert row.ratio == 0.5 and not row.meets
    table = markdown([row], {"load": "1.00"})
    assert "- load: 1.00" in table
    assert "| p | c | x/s | 2 | y/s | 4 | 0.5 |  | >= 0.95 | **no** |" in table
    assert table.count("|---") == len(COLUMNS)


@pytest.mark.parametrize("backbone", ["bknet", "lmtcnn"])
def test_packed_samples_are_the_decoded_ones(data_dir, tmp_path, backbone):
    cfg = train_config([f"backbone={backbone}", *TINY_SOURCES])
    dm = datamodule(cfg)
    dataset = dm.datasets["val"]["utk_like"]
    dataset.transform = build_transform(dm.input_spec, train=False)  # deterministic
    packed = PackedDataset.pack(dataset, dm.input_spec, tmp_path)
    assert np.load(packed.file, mmap_mode="r").shape == (
        len(dataset), stored_size(dm.input_spec), stored_size(dm.input_spec), dataset.channels)
    for i in (0, 7, len(dataset) - 1):
        a, b = dataset[i], packed[i]
        assert torch.equal(a["image"], b["image"])
        torch.testing.assert_close(a["targets"], b["targets"], rtol=0, atol=0, equal_nan=True)
    mtime = packed.file.stat().st_mtime_ns
    assert PackedDataset.pack(dataset, dm.input_spec, tmp_path).file.stat().st_mtime_ns == mtime


def test_packed_training_batches_are_the_decoded_ones(data_dir, tmp_path):
    # Same seed, same sampler draws and augmentation: the first training batch of every source
    # is the same whether its pixels come from the JPEGs or from the pack.
    cfg = train_config(["backbone=lmtcnn", "data.batch_size=16", *TINY_SOURCES])
    batches = []
    for packed in (False, True):
        dm = datamodule(cfg)
        if packed:
            dm.datasets["train"] = {s: PackedDataset.pack(ds, dm.input_spec, tmp_path)
                                    for s, ds in dm.datasets["train"].items()}
        torch.manual_seed(0)
        batches.append(next(iter(dm.train_dataloader()))[0])
    for source, batch in batches[0].items():
        assert torch.equal(batch["image"], batches[1][source]["image"]), source
        torch.testing.assert_close(batch["targets"], batches[1][source]["targets"], rtol=0,
                                   atol=0, equal_nan=True)


def test_packed_file_of_another_dataset_is_refused(data_dir, tmp_path):
    dm = datamodule(train_config(TINY_SOURCES))
    packed = PackedDataset.pack(dm.datasets["val"]["utk_like"], dm.input_spec, tmp_path)
    with pytest.raises(ValueError, match=f"packed images {packed.file}.*re-pack"):
        PackedDataset(dm.datasets["train"]["utk_like"], packed.file)




def test_a_measurement_rewrites_its_docs_page_and_a_quick_run_never_does(tmp_path,
                                                                        monkeypatch):
    import benchmarks.cli as cli

    page, quick = tmp_path / "docs" / "benchmark-results.md", tmp_path / "quick.md"
    monkeypatch.setattr(cli, "DEFAULT_OUT", page)
    monkeypatch.setattr(cli, "QUICK_OUT", quick)
    monkeypatch.setattr(cli, "run_parts", lambda *args: ([], {"detection": 1.0}))
    assert cli.main(["--quick", "--parts", "detection"]) == 0
    assert quick.is_file() and not page.exists()
    assert cli.main(["parts=detection"]) == 0  # key=value reads as --parts
    text = page.read_text()
    assert text.startswith("# Benchmark results") and "`python -m benchmarks parts=detection`" in text


def test_peer_script_measures_ours_and_a_trained_runs_export_without_the_peer(
        trained_run, tmp_path, capsys):
    """``benchmarks.peer --no-peer``: ours (BKNet on onnxruntime, MTCNN onnx) and a trained
    run's ONNX export each answer every photo; the table has a row per system."""
    import json
    import shutil

    from benchmarks import peer
    from mtlface.export import export_run

    run = shutil.copytree(trained_run, tmp_path / "run")
    export_run(run, "onnx")
    out = tmp_path / "peer.json"
    assert peer.main(["--no-peer", "--backbones", "bknet", "--backends", "onnx",
                      "--detectors", "onnx", "--repeats", "1", "--warmup", "0",
                      "--run", str(run), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    names = list(record["records"])
    assert names == ["ours bknet onnx, MTCNN onnx", "run run onnx, MTCNN onnx"]
    for rec in record["records"].values():
        assert len(rec["faces"]) == len(record["photos"]) and sum(rec["faces"]) > 0
    assert all(name in record["table"] for name in names)
