"""MTCNN's three networks (P-, R-, O-Net, the weights inside facenet-pytorch) as onnxruntime
sessions.

Each network is exported once with ``torch.onnx.export`` into a cache folder and loaded from
there afterwards. The file name carries a hash of the weights file and of the exporter (torch
version, opset, this module's export format), so new weights or a new exporter give a new
file. Files are written atomically (temp + rename: parallel workers may export at once); a file
that does not load (truncated, corrupt) is exported again, with a warning.

Cache folder: ``$MTLFACE_DATA_DIR/models/mtcnn`` when set, else ``$XDG_CACHE_HOME/mtlface/mtcnn``
(``~/.cache/mtlface/mtcnn``). An unwritable folder is not fatal: the export then stays in memory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import itertools
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from mtlface.errors import UserError

log = logging.getLogger(__name__)

OPSET = 17
EXPORT_FORMAT = 8  # bump when the export below changes what a given torch version writes
NETS = ("pnet", "rnet", "onet")
# Output names in the order facenet-pytorch's modules return them (P-Net's prob: the face
# channel alone, see _pnet_face_head).
OUTPUTS = {"pnet": ("reg", "prob"), "rnet": ("reg", "prob"), "onet": ("reg", "points", "prob")}
INPUT_SIZE = {"pnet": 12, "rnet": 24, "onet": 48}
# The first layers of every network, a PReLU between a convolution and a max-pool: the
# exporter pools first (see _pool_first).
POOLED = ("conv1", "prelu1", "pool1", "conv2")
# The other PReLUs on feature maps (the rest follow a dense layer), each with the layers
# that read its output (through a max-pool at most; a dense layer through facenet-pytorch's
# ``permute(0, 3, 2, 1)``, so channels are the fastest-varying index of its input).
MAP_PRELUS = {"pnet": {"prelu2": ("conv3",), "prelu3": ("conv4_1", "conv4_2")},
              "rnet": {"prelu2": ("conv3",), "prelu3": ("dense4",)},
              "onet": {"prelu2": ("conv3",), "prelu3": ("conv4",), "prelu4": ("dense5",)}}
# R- and O-Net's dense part: the first dense layer and its PReLU, the regression heads in
# output order, and the face head (softmax).
DENSE = {"rnet": ("dense4", "prelu4", ("dense5_2",), "dense5_1"),
         "onet": ("dense5", "prelu5", ("dense6_2", "dense6_3"), "dense6_1")}
CHANNEL_BLOCK = 16  # onnxruntime's blocked layout on AVX-512 (8 on AVX2 divides it)


def cache_dir() -> Path:
    data = os.environ.get("MTLFACE_DATA_DIR")
    if data:
        return Path(data) / "models" / "mtcnn"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mtlface" / "mtcnn"


def weights_file(net: str) -> Path:
    # Found without importing facenet_pytorch (~1 s of imports), needed only to export.
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("detector=mtcnn needs facenet-pytorch (pip install facenet-pytorch "
                        "--no-deps), which holds the MTCNN weights")
    return Path(spec.submodule_search_locations[0]) / "data" / f"{net}.pt"


def export_key(net: str) -> str:
    """Hash of the weights and of the exporter: a change of either names a new file."""
    import torch

    digest = hashlib.sha256(weights_file(net).read_bytes())
    digest.update(f"torch {torch.__version__} opset {OPSET} format {EXPORT_FORMAT}".encode())
    return digest.hexdigest()[:16]


def _scale(weights):
    """A per-channel multiplication as an inference-mode BatchNorm (mean 0, variance 1)."""
    import torch

    norm = torch.nn.BatchNorm2d(len(weights), eps=0.0).eval()
    with torch.no_grad():
        norm.weight.copy_(weights)
        norm.bias.zero_()
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0)
    return norm


def _channel_prelu(module, prelu: str, readers: tuple[str, ...]) -> None:
    """``prelu(y) = (1 - a) * (relu(y) + a / (1 - a) * y)``: the PReLU becomes
    ``relu(y) + c * y``, the product a BatchNorm, and the factor ``1 - a`` (positive: it
    commutes with a max-pool) moves into the weights of the layers that read it. onnxruntime
    folds the BatchNorm and the sum into its blocked layout, two passes over the map, while a
    PRelu node makes it convert the layout back and forth around a slow broadcast (R- and
    O-Net run 30-40 % faster; outputs agree to ~1e-6)."""
    import torch

    slope = getattr(module, prelu).weight.detach().clone()
    three_terms = bool((slope >= 1).any())  # no positive factor to move: (1-a)relu(y) + ay
    keep = torch.ones_like(slope) if three_terms else 1 - slope

    class ChannelPReLU(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.positive = _scale(1 - slope) if three_terms else torch.nn.Identity()
            self.linear = _scale(slope / keep)

        def forward(self, x):
            return self.positive(torch.relu(x)) + self.linear(x)

    setattr(module, prelu, ChannelPReLU())
    with torch.no_grad():
        for name in readers:
            weight = getattr(module, name).weight
            if weight.dim() == 4:  # a convolution: input channels are its second axis
                weight *= keep[None, :, None, None]
            else:  # a dense layer after the permute: channel of input i is i % channels
                weight *= keep.repeat(weight.shape[1] // len(keep))[None, :]


def _takes_pixels(module) -> None:
    """MTCNN's input scaling ``(x - 127.5) / 128`` folded into the first convolution (its
    padding is none, so exactly): the network takes pixel values, and the cascade makes no
    pass of its own over every pyramid level and crop."""
    import torch

    conv = module.conv1
    with torch.no_grad():
        conv.bias += conv.weight.sum(dim=(1, 2, 3)) * (-127.5 / 128)
        conv.weight /= 128


def _blocks(channels: int) -> int:
    return -(-channels // CHANNEL_BLOCK) * CHANNEL_BLOCK


def _pool_first(module, conv: str, prelu: str, pool: str, following: str) -> None:
    """``pool(prelu(conv(x)))`` computed as the pool first and the PReLU on the pooled map,
    a quarter of the pixels (at full resolution the PReLU takes ~40 % of P-Net's time).

    Per channel, with ``M`` and ``m`` the largest and smallest ``y = conv(x)`` of a pooling
    window, the pooled PReLU of slope ``a`` is
    ``(1 - a) * relu(M) + a * M`` for ``0 <= a <= 1``,
    ``a * M - (a - 1) * relu(M)`` for ``a > 1`` (both increasing: pool, then PReLU), and
    ``max(M, a * m) = relu(M - |a| * N) + |a| * N`` with ``N = -m`` for ``a < 0``.
    So ``conv`` also computes ``-y`` of the negative-slope channels (the pool then gives
    ``N``), two 1x1 convolutions ``u`` and ``v`` give ``relu(u(z)) + v(z)``, and the concave
    ``a > 1`` channels come out negated, a sign that ``following``'s weights take back.
    Channel counts are padded to ``CHANNEL_BLOCK`` with zero weights so onnxruntime keeps every
    layer in its blocked layout. Outputs agree with the original to float rounding."""
    import torch

    first, slope, second = getattr(module, conv), getattr(module, prelu), getattr(module, following)
    a = slope.weight.detach()
    channels = len(a)
    negative = torch.nonzero(a < 0).flatten()
    wide = torch.nn.Conv2d(first.in_channels, _blocks(channels + len(negative)),
                           first.kernel_size, first.stride)
    pooled = _blocks(channels)
    u = torch.nn.Conv2d(wide.out_channels, pooled, 1)
    v = torch.nn.Conv2d(wide.out_channels, pooled, 1)
    fed = torch.nn.Conv2d(pooled, second.out_channels, second.kernel_size, second.stride)
    with torch.no_grad():
        for layer in (wide, u, v, fed):
            for tensor in layer.parameters():
                tensor.zero_()
        wide.weight[:channels], wide.bias[:channels] = first.weight, first.bias
        wide.weight[channels:channels + len(negative)] = -first.weight[negative]
        wide.bias[channels:channels + len(negative)] = -first.bias[negative]
        sign = torch.ones(channels)
        for c in range(channels):
            if a[c] < 0:
                n = channels + int(torch.nonzero(negative == c))
                u.weight[c, c], u.weight[c, n], v.weight[c, n] = 1.0, a[c], -a[c]
            elif a[c] <= 1:
                u.weight[c, c], v.weight[c, c] = 1 - a[c], a[c]
            else:
                u.weight[c, c], v.weight[c, c], sign[c] = a[c] - 1, -a[c], -1.0
        fed.weight[:, :channels] = second.weight * sign[None, :, None, None]
        fed.bias[:] = second.bias

    class PooledPReLU(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.u, self.v = u, v

        def forward(self, z):
            return torch.relu(self.u(z)) + self.v(z)

    # The networks call conv, prelu, pool, following in that order.
    setattr(module, prelu, getattr(module, pool))
    setattr(module, pool, PooledPReLU())
    setattr(module, conv, wide)
    setattr(module, following, fed)


def _pnet_face_head(module):
    """P-Net with its two 1x1 heads as one convolution and the two-way softmax as a sigmoid
    of the logit difference (the same probability, to ~1e-6): ``prob`` holds the face
    probability alone, one channel; ~10 % faster, P-Net's maps being the cascade's largest."""
    import torch

    class FaceHead(torch.nn.Module):
        def __init__(self, pnet):
            super().__init__()
            self.pnet = pnet
            face, reg = pnet.conv4_1, pnet.conv4_2
            self.head = torch.nn.Conv2d(reg.in_channels, 5, 1)
            with torch.no_grad():
                self.head.weight.copy_(torch.cat([face.weight[1:] - face.weight[:1], reg.weight]))
                self.head.bias.copy_(torch.cat([face.bias[1:] - face.bias[:1], reg.bias]))

        def forward(self, x):
            p = self.pnet
            x = p.prelu3(p.conv3(p.prelu2(p.conv2(p.pool1(p.prelu1(p.conv1(x)))))))
            out = self.head(x)
            return out[:, 1:], torch.sigmoid(out[:, :1])

    return FaceHead(module)


def _flat_dense(module, dense: str, prelu: str, regressions: tuple[str, ...], face: str):
    """R- or O-Net reading its last feature map in memory order. facenet-pytorch transposes
    the map (``permute(0, 3, 2, 1)``) before the first dense layer, which costs onnxruntime a
    Transpose after its layout conversion; the dense layer's input columns, permuted to the
    map's own order, give the same products."""
    import torch

    first = getattr(module, dense)
    body = torch.nn.Sequential(*itertools.takewhile(lambda m: m is not first, module.children()))
    channels = [m for m in body if isinstance(m, torch.nn.Conv2d)][-1].out_channels
    side = round((first.in_features // channels) ** 0.5)
    with torch.no_grad():  # columns (w, h, c) -> (c, h, w)
        first.weight.copy_(first.weight.reshape(-1, side, side, channels)
                           .permute(0, 3, 2, 1).reshape(first.weight.shape))

    class FlatDense(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.dense, self.prelu = body, first, getattr(module, prelu)
            self.regressions = torch.nn.ModuleList(getattr(module, r) for r in regressions)
            self.face = getattr(module, face)

        def forward(self, x):
            x = self.prelu(self.dense(self.body(x).flatten(1)))
            return (*(r(x) for r in self.regressions), torch.softmax(self.face(x), dim=1))

    return FlatDense().eval()


def export(net: str) -> bytes:
    """The network as ONNX bytes. P-Net is fully convolutional: height and width are
    dynamic (one session serves every pyramid level); the batch is dynamic for all three."""
    import torch
    from facenet_pytorch.models import mtcnn as facenet

    module = {"pnet": facenet.PNet, "rnet": facenet.RNet, "onet": facenet.ONet}[net]().eval()
    _takes_pixels(module)
    _pool_first(module, *POOLED)
    for name, readers in MAP_PRELUS[net].items():
        _channel_prelu(module, name, readers)
    if net == "pnet":
        module = _pnet_face_head(module).eval()
    else:
        module = _flat_dense(module, *DENSE[net])
    size = INPUT_SIZE[net]
    axes = {0: "n", 2: "h", 3: "w"} if net == "pnet" else {0: "n"}
    dynamic = {"image": axes, **{name: {0: "n"} for name in OUTPUTS[net]}}
    if net == "pnet":
        dynamic.update({name: {0: "n", 2: "h", 3: "w"} for name in OUTPUTS[net]})
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, torch.zeros(1, 3, size, size), buffer, dynamo=False,
                          input_names=["image"], output_names=list(OUTPUTS[net]),
                          dynamic_axes=dynamic, opset_version=OPSET)
    return buffer.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def model_path(net: str, folder: Path | None = None) -> Path:
    return (folder or cache_dir()) / f"{net}-{export_key(net)}.onnx"


@dataclass(frozen=True)
class SessionSettings:
    threads: int = 1  # intra-op threads of each session
    providers: tuple[str, ...] = ("CPUExecutionProvider",)


def session(net: str, settings: SessionSettings = SessionSettings(), folder: Path | None = None):
    """An onnxruntime session of ``net``, exporting it first when the cache has no (loadable)
    file for these weights and this exporter."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: a corrupt file is reported below, once

    def load(model: str | bytes):
        return ort.InferenceSession(model, options, providers=list(settings.providers))

    path = model_path(net, folder)
    if path.is_file():
        try:
            return load(str(path))
        except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own, untyped, errors)
            log.warning("MTCNN %s: cached ONNX file %s does not load (%s); exporting it again",
                        net, path, str(exc).splitlines()[0][:200])
    data = export(net)
    try:
        _write_atomically(path, data)
    except OSError as exc:
        log.warning("MTCNN %s: cannot write %s (%s); the export is kept in memory only", net,
                    path, exc)
    try:
        return load(data)
    except Exception as exc:  # noqa: BLE001 (as above)
        raise UserError(f"MTCNN {net}: onnxruntime cannot load the exported network ({exc}); "
                        f"use detector.backend=torch") from None
