"""The MTCNN implementations ``detector.backend`` names. Each is built by a function of the
same arguments and returns an object whose ``detect(batch, landmarks=True)`` answers like
facenet-pytorch's ``MTCNN.detect``: per image, boxes, probabilities and landmarks.

``onnx`` (default): ``cascade.Cascade`` over the three networks on onnxruntime; on
``device=cuda`` with onnxruntime's CUDA provider installed and a GPU present, on the GPU;
on ``cuda`` without that provider, facenet-pytorch's own on the GPU.
``torch``: facenet-pytorch's ``MTCNN``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from mtlface.data.preprocess.mtcnn.networks import NETS, OUTPUTS, SessionSettings, session

log = logging.getLogger(__name__)
CUDA_PROVIDER = "CUDAExecutionProvider"


class OnnxNetwork:
    """An onnxruntime session as a callable ``(N, 3, h, w) float32 -> outputs``."""

    def __init__(self, net: str, settings: SessionSettings) -> None:
        self.net = net
        self.session = session(net, settings)
        self.outputs = list(OUTPUTS[net])

    def __call__(self, pixels: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.outputs, {"image": pixels})


class OnnxMTCNN:
    """facenet-pytorch's ``MTCNN.detect`` interface over ``Cascade``."""

    def __init__(self, cascade, providers: Sequence[str]) -> None:
        self.cascade = cascade
        self.providers = tuple(providers)

    def detect(self, images, landmarks: bool = True):
        batch = np.ascontiguousarray(np.asarray(images, dtype=np.uint8))
        faces = self.cascade.detect(batch)
        boxes = [f[0] for f in faces]
        probs = [f[1] for f in faces]
        points = [f[2] for f in faces]
        return (boxes, probs, points) if landmarks else (boxes, probs)


def cuda_provider_ready(device: str) -> bool:
    """``device`` asks for a GPU, one is present and onnxruntime has its CUDA provider."""
    import onnxruntime as ort
    import torch

    return (str(device).startswith("cuda") and torch.cuda.is_available()
            and CUDA_PROVIDER in ort.get_available_providers())


def onnx_mtcnn(min_face_size: float, thresholds: Sequence[float], factor: float,
               device: str = "cpu"):
    import torch

    from mtlface.data.preprocess.mtcnn.cascade import Cascade  # torch, torchvision: heavy

    if str(device).startswith("cuda"):
        if not cuda_provider_ready(device):
            log.info("MTCNN: onnxruntime has no CUDA provider here; detecting with "
                     "facenet-pytorch on %s", device)
            return torch_mtcnn(min_face_size, thresholds, factor, device)
        index = torch.device(device).index or 0
        providers: list = [(CUDA_PROVIDER, {"device_id": index}), "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    # One intra-op thread count for both runtimes: workers set torch's to theirs.
    settings = SessionSettings(threads=torch.get_num_threads(), providers=tuple(providers))
    pnet, rnet, onet = (OnnxNetwork(net, settings) for net in NETS)
    return OnnxMTCNN(Cascade(pnet, rnet, onet, min_face_size, thresholds, factor),
                     [p if isinstance(p, str) else p[0] for p in providers])


def torch_mtcnn(min_face_size: float, thresholds: Sequence[float], factor: float,
                device: str = "cpu"):
    from facenet_pytorch import MTCNN  # heavy import, only where detection runs

    return MTCNN(keep_all=True, select_largest=False, post_process=False,
                 min_face_size=min_face_size, thresholds=list(thresholds), factor=factor,
                 device=device)


BACKENDS = {"onnx": onnx_mtcnn, "torch": torch_mtcnn}
