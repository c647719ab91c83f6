"""Export a trained run for deployment: TorchScript or ONNX, one named output per task.

    python -m mtlface.export run=outputs/runs/<date>_<time> format=onnx [out=model.onnx]
        [checkpoint=path.ckpt] [--debug]

The exported model takes the normalised image batch ``Tensor[B, C, S, S]`` at the backbone's
``InputSpec`` size (any ``B``) and returns the raw head output of each task (ONNX output names
= task names; TorchScript returns ``{task: Tensor}``). ``<out>.json`` beside it holds what
inference needs besides the weights (task decoding, input spec, face settings), so
``Predictor.from_exported(out)`` needs neither the run's config nor Lightning. After export
the file is run on random inputs and compared with PyTorch; the largest absolute difference
is printed and stored in the JSON.

A calibrated run (``<run>/calibration.json``, fitted for the exported checkpoint) keeps its
raw outputs in the graph and its calibration in the JSON (``calibration.temperatures``: divide
a task's logits by it before the softmax; ``calibration.interval.q``: the age interval is the
predicted age +- q): ``Predictor`` applies it with every backend, so ONNX, TorchScript and the
checkpoint give the same calibrated probabilities and intervals.

A mistake (a bad argument: exit 2; a missing run or checkpoint, an unwritable ``out``: exit 1)
ends with one ``error:`` line, checked before the export starts; ``--debug`` shows the
traceback.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mtlface.backbones.spec import InputSpec
from mtlface.calibration.store import Calibration, load_run_calibration
from mtlface.data.provenance import SYNTHETIC_NOTICE, trained_on_synthetic_only
from mtlface.predict.backends import OnnxBackend, TorchScriptBackend
from mtlface.config import parse_key_values
from mtlface.errors import ConfigError, check_writable, debug_requested
from mtlface.predict.errors import PredictError, exit_code_of
from mtlface.predict.faces import FaceSettings, settings_from_config
from mtlface.predict.metadata import EXPORT_FILES, ModelInfo, metadata_path
from mtlface.predict.runs import best_checkpoint, build_trained_model, load_config
from mtlface.runs import RunFolder
from mtlface.tasks import Task

FORMATS = tuple(EXPORT_FILES)
PARITY_TOLERANCE = 1e-4
INPUT_NAME = "image"


class ExportModel(nn.Module):
    """Plain ``nn.Module`` around the trained backbone and heads: images -> one output per
    task, in ``names`` order (a tuple, or a dict when ``as_dict``)."""

    def __init__(self, backbone: nn.Module, tasks: Mapping[str, Task], as_dict: bool = False):
        super().__init__()
        self.backbone = backbone
        self.tasks = nn.ModuleDict(dict(tasks))
        self.names = list(tasks)
        self.as_dict = as_dict

    def forward(self, images: Tensor) -> tuple[Tensor, ...] | dict[str, Tensor]:
        features = self.backbone(images)
        outputs = [self.tasks[name](features) for name in self.names]
        return dict(zip(self.names, outputs)) if self.as_dict else tuple(outputs)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    metadata: Path
    format: str
    max_abs_diff: float  # exported vs PyTorch on the same random inputs
    calibrated: bool = False  # the run's calibration is in the metadata

    @property
    def ok(self) -> bool:
        return self.max_abs_diff < PARITY_TOLERANCE


def random_inputs(spec: InputSpec, batch: int, seed: int) -> Tensor:
    """Normalised-looking inputs: standard normal values at the backbone's input size."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, spec.channels, spec.size, spec.size, generator=generator)


def export_run(run_dir: str | os.PathLike, fmt: str, out: str | os.PathLike | None = None,
               checkpoint: str | os.PathLike | None = None) -> ExportResult:
    """Export a run folder's best checkpoint (or ``checkpoint``); default ``out``:
    ``<run_dir>/export/model.onnx`` or ``model.pt``, where ``Predictor.from_run(run_dir,
    backend=fmt)`` looks."""
    _check_format(fmt)
    cfg = load_config(run_dir)
    out = Path(out) if out else RunFolder(run_dir).exported(fmt)
    check_writable(out, f"exported {fmt} model", "out=")  # before the model is built
    checkpoint = Path(checkpoint or best_checkpoint(run_dir))
    model, spec = build_trained_model(cfg, checkpoint, "cpu")
    provenance = ({"trained_on": "synthetic only", "notice": SYNTHETIC_NOTICE}
                  if trained_on_synthetic_only(cfg) else {})
    return export_model(model.backbone, model.tasks, spec, fmt, out, settings_from_config(cfg),
                        calibration=load_run_calibration(run_dir, checkpoint),
                        run=str(run_dir), checkpoint=str(checkpoint), **provenance)


def export_model(backbone: nn.Module, tasks: Mapping[str, Task], spec: InputSpec, fmt: str,
                 out: str | os.PathLike, faces: FaceSettings | None = None,
                 calibration: Calibration | None = None, **extra: str) -> ExportResult:
    _check_format(fmt)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if calibration is not None:  # applied by the Predictor, whatever the backend
        extra["calibration"] = calibration.to_dict()
    wrapper = ExportModel(backbone, tasks, as_dict=fmt == "torchscript").eval()
    example = random_inputs(spec, batch=2, seed=0)
    with torch.no_grad():
        if fmt == "torchscript":
            _to_torchscript(wrapper, example, out)
        else:
            _to_onnx(wrapper, example, out)
    # A batch size other than the traced one: proves the batch axis is dynamic too.
    diff = parity(wrapper, out, fmt, random_inputs(spec, batch=3, seed=1))
    info = ModelInfo.from_model(tasks, spec, faces or FaceSettings(), format=fmt,
                                parity_max_abs_diff=diff, **extra)
    meta = metadata_path(out)
    meta.write_text(info.to_json())
    return ExportResult(out, meta, fmt, diff, calibration is not None)


def _to_torchscript(wrapper: ExportModel, example: Tensor, out: Path) -> None:
    with warnings.catch_warnings():
        # torch 2.14 marks torch.jit deprecated (FutureWarning); TorchScript files still load
        # in C++ (libtorch) and in every torch release, which is what this format is for.
        warnings.simplefilter("ignore", FutureWarning)
        # F.local_response_norm's empty-input check traces as a constant: true for any input.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapper, example, strict=False)  # strict=False: a dict output
        traced.save(str(out))


def _to_onnx(wrapper: ExportModel, example: Tensor, out: Path) -> None:
    names = wrapper.names
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of dynamo=True, which needs
        # onnxscript; it exports these plain CNNs exactly.
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (example,), str(out), dynamo=False, opset_version=17,
                          input_names=[INPUT_NAME], output_names=names,
                          dynamic_axes={n: {0: "batch"} for n in (INPUT_NAME, *names)})


def parity(wrapper: ExportModel, path: Path, fmt: str, inputs: Tensor) -> float:
    """Largest absolute difference between the exported model's outputs and PyTorch's."""
    with torch.no_grad():
        reference = dict(zip(wrapper.names, _as_tuple(wrapper, inputs)))
    exported = (OnnxBackend(path) if fmt == "onnx" else TorchScriptBackend(path))(inputs)
    if sorted(exported) != sorted(reference):
        raise PredictError(f"exported outputs {sorted(exported)} differ from the tasks "
                           f"{sorted(reference)}")
    return max(float((exported[n] - reference[n]).abs().max()) for n in reference)


def _as_tuple(wrapper: ExportModel, inputs: Tensor) -> tuple[Tensor, ...]:
    out = wrapper(inputs)
    return tuple(out[n] for n in wrapper.names) if isinstance(out, dict) else out


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt}: not an export format; format must be one of "
                          f"{', '.join(FORMATS)}")


USAGE = ("usage: python -m mtlface.export run=<run folder> format=onnx|torchscript "
         "[out=<file>] [checkpoint=<file.ckpt>] [--debug]")
KEYS = ("run", "format", "out", "checkpoint")


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    args = parse_key_values(argv, KEYS, USAGE)
    for key in ("run", "format"):
        if key not in args:
            raise ConfigError(f"{key}=... is required; {USAGE}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the export matches PyTorch, 1 when it does not or on a user mistake that
    is not an argument (missing run, unwritable out=), 2 on a bad argument."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug_requested(argv)  # removes --debug: tracebacks instead of one-line errors
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__.strip())
        return 0
    return exit_code_of(lambda: _export(parse_args(argv)))


def _export(args: dict[str, str]) -> int:
    result = export_run(args["run"], args["format"], args.get("out"), args.get("checkpoint"))
    print(f"exported {result.format} model to {result.path} (metadata: {result.metadata})")
    if result.calibrated:
        print("calibration (temperatures, age interval) stored in the metadata")
    verdict = "ok" if result.ok else f"FAILED (tolerance {PARITY_TOLERANCE:g})"
    print(f"parity with PyTorch on 3 random inputs: max abs difference "
          f"{result.max_abs_diff:.3g}: {verdict}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
