"""One ``key=value`` parser for the plain commands (evaluate, pseudo-label, export, calibrate):
paths stay as typed, other values are typed by the command's options dataclass, and every
mistake is one ConfigError naming the argument."""

from dataclasses import dataclass, field

import pytest
from omegaconf import MISSING

from mtlface.config import parse_key_values, structured_options
from mtlface.errors import ConfigError
from mtlface.evaluate.cli import parse_args as evaluate_args
from mtlface.pseudo_label import parse_args as pseudo_label_args


@dataclass
class Options:
    run: str = MISSING
    out: str | None = None
    batch_size: int = 256
    threshold: float = 0.9
    plots: bool = True
    tasks: list[str] | None = None
    splits: list[str] = field(default_factory=lambda: ["train"])


def options(*argv: str):
    return structured_options(Options, parse_key_values(argv, [*Options.__dataclass_fields__],
                                                        "see --help"))


def test_text_options_stay_as_typed():
    cfg = options("run=runs/my run [v2], final", "out=${HOME}/x")
    assert cfg.run == "runs/my run [v2], final"
    assert cfg.out == "${HOME}/x"  # text, not an interpolation


def test_other_options_are_typed_by_the_dataclass():
    cfg = options("run=r", "batch_size=8", "threshold=1", "plots=false", "tasks=[age,gender]",
                  "splits=[train,val]")
    assert (cfg.batch_size, cfg.threshold, cfg.plots) == (8, 1.0, False)
    assert list(cfg.tasks) == ["age", "gender"] and list(cfg.splits) == ["train", "val"]
    assert options("run=r", "tasks=null").tasks is None


@pytest.mark.parametrize("argv, message", [
    (["run=r", "batch_size=abc"], r"batch_size=abc is not a whole number \(the default is 256\)"),
    (["run=r", "threshold=high"], "threshold=high is not a number"),
    (["run=r", "plots=maybe"], "plots=maybe is not true or false.*plots=true"),
    (["run=r", "tasks=[age"], r"tasks=\[age is not a YAML value"),
    (["run=r", "tasks=3"], "tasks=3: "),
    (["run=r", "bogus=1"], "bad argument 'bogus=1'.*keys run, out"),
    (["run"], "bad argument 'run'"),
    ([], r"missing option\(s\): run=\.\.\."),
])
def test_mistakes_are_one_config_error(argv, message):
    with pytest.raises(ConfigError, match=message) as caught:
        options(*argv)
    assert "\n" not in str(caught.value)


def test_evaluate_options_and_data_overrides():
    cfg = evaluate_args(["run=runs/a [1]", "sources=[x,y]", "plots=false", "data.fold=2",
                         "batch_size=4"])
    assert cfg.run == "runs/a [1]" and list(cfg.sources) == ["x", "y"]
    assert not cfg.plots and cfg.batch_size == 4
    assert list(cfg.data_overrides) == ["data.fold=2"]
    with pytest.raises(ConfigError, match=r"bad argument 'splt=val'.*data\.<key>=<value>"):
        evaluate_args(["run=r", "splt=val"])
    with pytest.raises(ConfigError, match=r"missing option\(s\): run="):
        evaluate_args(["split=val"])


def test_pseudo_label_options():
    cfg = pseudo_label_args(["run=r", "source_manifest=m, copy.csv", "tasks=[emotion]",
                             "threshold=0.5"])
    assert cfg.source_manifest == "m, copy.csv" and list(cfg.tasks) == ["emotion"]
    assert cfg.threshold == 0.5 and list(cfg.splits) == ["train"]
    with pytest.raises(ConfigError, match=r"missing option\(s\): run=\.\.\., source_manifest"):
        pseudo_label_args(["threshold=0.5"])
    with pytest.raises(ConfigError, match="threshold=x is not a number"):
        pseudo_label_args(["run=r", "source_manifest=m", "threshold=x"])


def test_flag_commands_take_key_values_too():
    import argparse

    from mtlface.config import key_values_as_flags

    parser = argparse.ArgumentParser()
    parser.add_argument("-i", "--image")
    parser.add_argument("--detect-every", type=int)
    parser.add_argument("--show", action="store_true")
    argv = ["image=my photo.jpg", "detect_every=3", "show=true", "--json", "x=y.jsonl"]
    assert key_values_as_flags(argv, parser) == [
        "--image=my photo.jpg", "--detect-every=3", "--show", "--json", "x=y.jsonl"]
    assert key_values_as_flags(["show=false"], parser) == []
    args = parser.parse_args(key_values_as_flags(["image=a=b.jpg", "detect-every=2"], parser))
    assert (args.image, args.detect_every, args.show) == ("a=b.jpg", 2, False)
