"""The one command line: ``mtlface <command>`` / ``python -m mtlface``, and an installed (not
editable) mtlface that finds its configs through the package from any directory."""

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT
from mtlface.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_an_unknown_command_is_one_line(capsys):
    assert main(["trian"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: unknown command 'trian'; commands: " + ", ".join(COMMANDS) + " (mtlface --help)")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in ("train", "preprocess")])
def test_every_command_answers_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse exits 0 after --help
        code = main([command, "--help"])
        sys.exit(code)
    assert exit_info.value.code in (0, None)
    assert capsys.readouterr().out.strip()


@pytest.mark.integration
def test_a_wheel_installed_elsewhere_trains_from_any_directory(tmp_path, data_dir):
    """``pip install .`` (not editable): the wheel holds conf/ as mtlface.conf, and
    ``python -m mtlface train debug=fast`` runs from a folder that has no conf/."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "--no-build-isolation", "-w", str(tmp_path / "wheel"), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "wheel").glob("mtlface-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mtlface/conf/train.yaml" in names and "mtlface/conf/backbone/bknet.yaml" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                              "--target", str(site), str(wheel)], capture_output=True,
                             text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "MTLFACE_DATA_DIR": str(data_dir),
           "TMPDIR": str(tmp_path)}
    probe = subprocess.run([sys.executable, "-c", "import mtlface.config as c; print(c.CONF_DIR)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == str(site / "mtlface" / "conf"), probe.stderr
    run = subprocess.run([sys.executable, "-m", "mtlface", "train", "debug=fast",
                          "tasks=[age,gender]"], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "test/score" in run.stdout
    assert not (elsewhere / "outputs").exists()  # debug=fast: nothing left behind
