"""Every command line in the README's code blocks, run as a user types it.

Each command is run exactly as written, with only what shortens it added (``debug=fast`` or a
few steps, two values per swept key, two Optuna trials), its runs written under a temporary
folder by environment (``MTLFACE_LOG_DIR``, ``TMPDIR``), never by Hydra overrides, so the
command's own Hydra settings are the ones tested. Placeholders (``outputs/runs/<date>_<time>``,
``photo.jpg``, ``clip.mp4``, ``photos/``) become a real run, photo, video and folder. A command
that needs what this machine has not (a real dataset, a GPU, a SLURM cluster, a webcam) has its
error path checked instead: one ``error:`` line, no traceback. Every command must match exactly
one rule below, so a new README command cannot go untested."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT

pytestmark = pytest.mark.integration

FAST = ("debug=fast",)


@dataclass(frozen=True)
class Rule:
    pattern: str                 # regex searched in the command line
    add: tuple[str, ...] = ()    # appended arguments that only shorten the run
    error: tuple[int, str] | None = None  # expected (exit code, words of the error line)
    skip: str | None = None      # why it is not run (with what covers it)


RULES = [
    # Set-up: the installer is what CI itself runs; the default run is 3 epochs (the slow test
    # test_train.py::test_default_run_beats_chance_on_every_task runs it whole).
    Rule(r"^bash scripts/install\.sh && \.venv/bin/python -m pytest", skip="this test suite"),
    Rule(r"^bash scripts/install\.sh && \.venv/bin/python train\.py$", add=FAST),
    # Needs what this machine has not: the error path.
    Rule(r"trainer\.accelerator=gpu", error=(2, "no CUDA GPU")),
    Rule(r"hydra/launcher=slurm", error=(1, "needs SLURM's sbatch")),
    Rule(r"^python train\.py .*(data=(?!synthetic)\w+|experiment=(?!mtl_vs_stl)\w+)",
         add=FAST, error=(1, "python preprocess.py source=")),
    Rule(r"^python preprocess\.py", error=(1, "folder not found")),
    Rule(r"^python demo\.py( \[--camera \d\])?( \[-o webcam\.mp4\])?$", error=(1, "camera")),
    # Measurements take minutes each; --quick runs every part on tiny settings.
    Rule(r"^python -m benchmarks(?! --quick)", skip="a measurement (minutes); the "
         "--quick command runs the same parts"),
    Rule(r"^python -m benchmarks --quick"),
    # A resumed run takes its saved config (a finished one here): no limit may be added.
    Rule(r"^python train\.py resume="),
    Rule(r"debug=fast|--help"),
    Rule(r"^mtlface train", add=FAST),
    Rule(r"hparams_search=optuna", add=(*FAST, "hydra.sweeper.n_trials=2")),
    Rule(r"^python train\.py", add=FAST),
    Rule(r"^python (-m mtlface\.(evaluate|export|analysis|pseudo_label)|evaluate\.py|demo\.py)"),
]


def readme_commands(text: str) -> list[str]:
    """Command lines of the README's code blocks: ``\\`` continuations joined, comments and
    shell prompts dropped."""
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line.strip().removeprefix("$ ")).strip()
            if re.match(r"(bash scripts/|python |\.venv/bin/python |mtlface )", line):
                commands.append(line)
    return commands


COMMANDS = readme_commands((ROOT / "README.md").read_text())


def rule_for(command: str) -> Rule:
    matches = [r for r in RULES if re.search(r.pattern, command)]
    assert matches, f"no rule for README command {command!r}: add one to RULES"
    return matches[0]


def two_values(args: list[str]) -> list[str]:
    """A swept ``key=a,b,c`` keeps its first two values (a multirun still sweeps)."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and "," in value and not value.startswith(("[", "'", '"', "interval", "choice")):
            value = ",".join(value.split(",")[:2])
        out.append(f"{key}{sep}{value}")
    return out


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, data_dir):
    """A folder with a finished run, a photo, a short video and a folder of photos for the
    placeholders, and the environment every command runs with."""
    from skimage import data as skdata

    root = tmp_path_factory.mktemp("readme")
    env = {**os.environ, "MTLFACE_DATA_DIR": str(data_dir),
           "MTLFACE_LOG_DIR": str(root / "outputs"), "TMPDIR": str(root / "tmp"),
           "PYTHONPATH": str(ROOT)}
    env.pop("HYDRA_FULL_ERROR", None)
    (root / "tmp").mkdir()
    photo = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(root / "photo.jpg"), photo)
    cv2.imwrite(str(root / "my photo.jpg"), photo)
    (root / "photos").mkdir()
    cv2.imwrite(str(root / "photos" / "a.jpg"), photo)
    cv2.imwrite(str(root / "photos" / "b.jpg"), cv2.flip(photo, 1))
    writer = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10,
                             (photo.shape[1] // 2, photo.shape[0] // 2))
    for shift in range(4):
        writer.write(np.roll(cv2.resize(photo, None, fx=0.5, fy=0.5), shift * 4, axis=1))
    writer.release()
    # The finished run the <date>_<time> placeholders stand for: the default config, shortened.
    proc = subprocess.run([sys.executable, "train.py", "trainer.max_epochs=1",
                           "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
                           "trainer.limit_test_batches=1"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (root / "outputs" / "runs").iterdir()
    return root, env, run


def substitute(command: str, root: Path, run: Path) -> str:
    """Placeholders of the README become the workspace's real files."""
    for placeholder in ("outputs/runs/<date>_<time>", "outputs/runs/<x>", "outputs/runs/<run>",
                        "outputs/runs/<stage 1>"):
        command = command.replace(placeholder, str(run))
    command = command.replace('"my photo.jpg"', f'"{root / "my photo.jpg"}"')
    for name in ("photo.jpg", "clip.mp4", "photos/", "annotated.jpg", "annotated.mp4",
                 "faces.jsonl", "predictions.csv"):  # bare words only, not inside a path
        real = f"{root / name}{'/' if name.endswith('/') else ''}"
        command = re.sub(rf"(?<= ){re.escape(name)}(?= |$)", lambda _, path=real: path, command)
    return command


def test_every_readme_command_has_exactly_the_rules_it_needs():
    assert len(COMMANDS) >= 10, COMMANDS
    for command in COMMANDS:
        rule_for(command)  # raises for a command without a rule


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_works_as_typed(command, workspace):
    rule = rule_for(command)
    if rule.skip:
        pytest.skip(rule.skip)
    root, env, run = workspace
    typed = substitute(command, root, run)
    assert "<" not in typed and "..." not in typed, f"unresolved placeholder in {typed!r}"
    args = shlex.split(typed.split("&& ", 1)[-1])
    if args[0].endswith("python"):
        args[0] = sys.executable
    elif args[0] == "mtlface":  # the console script of this interpreter's environment
        args[:1] = [sys.executable, "-m", "mtlface"]
    if "-m" in args[1:2] or "-m" in args:
        args = two_values(args)
    proc = subprocess.run([*args, *rule.add], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    if rule.error:
        code, words = rule.error
        assert proc.returncode == code, (typed, proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and words in last, (typed, last)
    else:
        assert proc.returncode == 0, (typed, proc.stdout[-2000:], proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr
