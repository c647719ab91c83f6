"""Part 4, detection: MTCNN on onnxruntime (``detector.backend=onnx``, the default) vs
facenet-pytorch's ``MTCNN.detect`` (``detector.backend=torch``) on the same detection
canvases, measured in one run, and where each one's time goes.

Canvases: the preprocessing part's photos (skimage's astronaut, matplotlib's grace_hopper.jpg,
rescaled, flipped) scaled and padded to ``detect_size`` squares as ``MTCNNDetector`` does, in
batches of ``batch`` as a preprocessing chunk is. Both sides run in this process with the
threads ``--threads`` gives torch (onnxruntime gets as many); the two take turns each repeat.
The run fails if the two find different faces (more than 2 px or 1e-3 apart).

Where the time goes: the cascade's stages (pyramid, P-Net, nms_boxes = NMS and box
arithmetic, R-Net crops, R-Net, O-Net crops, O-Net, output = landmarks, the last NMS and the
split per image), and facenet-pytorch's three networks (forward hooks), each in ms per image
on the bench's clock, from a second pass of ``repeats`` rounds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.table import Row
from benchmarks.timing import interleaved, now

TARGET = 2.5
BOX_PX, PROB = 2.0, 1e-3


@dataclass(frozen=True)
class Settings:
    images: int = 16
    batch: int = 8
    detect_size: int = 320
    repeats: int = 5
    warmup: int = 1


QUICK = Settings(images=2, batch=2, repeats=1, warmup=0)


def canvas_batches(settings: Settings) -> list[np.ndarray]:
    from benchmarks.preprocess import make_images
    from mtlface.data.preprocess import MTCNNDetector

    detector = MTCNNDetector(detect_size=settings.detect_size)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp), settings.images)
        canvases = [detector._canvas(np.asarray(Image.open(p).convert("RGB")))[0]
                    for p in paths]
    return [np.stack(canvases[i: i + settings.batch])
            for i in range(0, len(canvases), settings.batch)]


def check_same_faces(ours, theirs) -> float:
    """The largest box difference; raises when the faces differ."""
    worst = 0.0
    for boxes, probs, t_boxes, t_probs in zip(ours[0], ours[1], theirs[0], theirs[1]):
        n = 0 if t_boxes is None else len(t_boxes)
        if len(boxes) != n:
            raise RuntimeError(f"onnx found {len(boxes)} faces, facenet-pytorch {n}")
        if n:
            worst = max(worst, float(np.abs(boxes - t_boxes).max()))
            if np.abs(probs - np.asarray(t_probs, float)).max() > PROB or worst > BOX_PX:
                raise RuntimeError(f"onnx and facenet-pytorch disagree: boxes {boxes} vs "
                                   f"{t_boxes}, probabilities {probs} vs {t_probs}")
    return worst


def network_timer(mtcnn) -> tuple[dict[str, float], Callable[[], None]]:
    """Seconds spent in each of facenet-pytorch's networks (forward hooks, the bench clock),
    and a function that removes the hooks."""
    spent: dict[str, float] = {}
    handles = []
    for name in ("pnet", "rnet", "onet"):
        module = getattr(mtcnn, name)

        def before(_module, _inputs, name=name):
            spent[f"_{name}"] = now()

        def after(_module, _inputs, _outputs, name=name):
            spent[name] = spent.get(name, 0.0) + now() - spent.pop(f"_{name}")

        handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    return spent, lambda: [h.remove() for h in handles]


def measure(settings: Settings):
    from mtlface.data.preprocess.mtcnn.backends import onnx_mtcnn, torch_mtcnn

    batches = canvas_batches(settings)
    args = (20, (0.6, 0.7, 0.7), 0.709)
    ours, theirs = onnx_mtcnn(*args), torch_mtcnn(*args)
    worst = max(check_same_faces(ours.detect(b), theirs.detect(b, landmarks=True))
                for b in batches)

    def detect_all(mtcnn) -> None:
        for b in batches:
            mtcnn.detect(b, landmarks=True)

    timings = interleaved(
        {"onnx": lambda: detect_all(ours), "torch": lambda: detect_all(theirs)},
        repeats=settings.repeats, warmup=settings.warmup, items=settings.images)
    # Stage breakdown: separate passes, so the hooks and counters cost the timings nothing.
    ours.cascade.timings, ours.cascade.clock = {}, now
    stages = ours.cascade.timings
    facenet, remove = network_timer(theirs)
    start = now()
    for _ in range(settings.repeats):
        detect_all(ours)
    ours_total = now() - start
    start = now()
    for _ in range(settings.repeats):
        detect_all(theirs)
    theirs_total = now() - start
    remove()
    per_image = 1000 / (settings.repeats * settings.images)
    breakdown = {name: s * per_image for name, s in stages.items()}
    facenet_ms = {name: s * per_image for name, s in facenet.items()}
    return timings, worst, (breakdown, ours_total * per_image), (facenet_ms,
                                                                 theirs_total * per_image)


def run(settings: Settings = Settings()) -> list[Row]:
    t, worst, (stages, ours_ms), (facenet, theirs_ms) = measure(settings)
    case = (f"{settings.images} photos on {settings.detect_size} px canvases, batch "
            f"{settings.batch}; same faces (boxes within {worst:.1e} px)")
    rows = [Row.rates("detection", case, "MTCNN on onnxruntime (cascade), images/s", t["onnx"],
                      "facenet-pytorch MTCNN.detect, images/s", t["torch"], at_least=TARGET)]
    for name, ms in stages.items():
        rows.append(Row("detection", "same, where the time goes", f"onnx cascade: {name}, "
                        f"ms/image", ms, "whole onnx cascade, ms/image", ours_ms))
    for name, ms in facenet.items():
        rows.append(Row("detection", "same, where the time goes", f"facenet-pytorch: {name}, "
                        f"ms/image", ms, "whole facenet-pytorch detect, ms/image", theirs_ms))
    return rows
