import pytest
import torch
from hydra.utils import instantiate

from conftest import compose_train
from mtlface.backbones import LMTCNN, BKNet, InputSpec, LeviHassner, TimmBackbone
from mtlface.config import group_options
from mtlface.data.transforms import build_transform


def _n_params(net):
    return sum(p.numel() for p in net.parameters())


# EfficientNet-B4 at its 380 px takes ~20 s forward + backward on 2 CPU cores: slow-marked;
# TimmBackbone stays covered by the `timm` config (resnet18) in the fast suite.
SLOW_BACKBONES = {"efficientnet_b4"}
BACKBONES = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_BACKBONES else n
             for n in group_options("backbone")]


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_config_honours_the_contract(name):
    torch.manual_seed(0)
    backbone = instantiate(compose_train([f"backbone={name}"]).backbone)
    spec = backbone.input_spec
    assert isinstance(spec, InputSpec) and isinstance(backbone.out_features, int)

    # The data pipeline turns any image into exactly the input the backbone declares.
    image = torch.randint(0, 256, (70, 50, spec.channels), dtype=torch.uint8).numpy()
    for train in (True, False):
        assert build_transform(spec, train=train)(image=image)["image"].shape == (
            spec.channels, spec.size, spec.size)

    # Train mode: (B, out_features); the gradient reaches the input and every parameter
    # (some may be exactly zero at init, e.g. timm's zero-initialised last BN of a block).
    x = torch.randn(2, spec.channels, spec.size, spec.size, requires_grad=True)
    out = backbone.train()(x)
    assert out.shape == (2, backbone.out_features) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    no_grad = [n for n, p in backbone.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters outside the graph: {no_grad[:5]}"
    x = x.detach()

    # Eval mode is deterministic (dropout off, BatchNorm on running statistics).
    backbone.eval()
    with torch.no_grad():
        assert torch.equal(backbone(x[:1]), backbone(x[:1]))


def test_bknet_is_the_published_architecture():
    net = BKNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128, 256, 256, 256]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 4
    assert net.out_features == 3 * 3 * 256  # 48 -> 3 after four 2x2 pools
    assert (net.input_spec.size, net.input_spec.channels) == (48, 1)
    assert net.input_spec.resize is None  # resized straight to 48, no crop


def test_bknet_rejects_an_input_size_the_pools_cannot_divide():
    with pytest.raises(ValueError, match="multiple of 16"):
        BKNet(input_size=50)


# ---- LMTCNN and Levi & Hassner: parameter counts from the papers' layer lists ------------------
def _lmtcnn_params(width: int) -> int:
    """LMTCNN-<width>-1 at 227x227x3, layer by layer (convs in the depthwise-separable blocks
    carry no bias: BatchNorm's shift replaces it; BN has a weight and a bias per channel)."""
    c2, c3 = 256 * width, 384 * width
    conv1 = 7 * 7 * 3 * 96 + 96                           # 7x7/4, 96 filters, bias
    # 227 -> conv 7/4: (227-7)/4+1 = 56 -> pool 3/2: 27 (LRN: no parameters)
    dsc1 = 3 * 3 * 96 + 2 * 96 + 96 * c2 + 2 * c2         # depthwise 3x3 + BN, pointwise 1x1 + BN
    # 27 -> depthwise stride 1: 27
    dsc2 = 3 * 3 * c2 + 2 * c2 + c2 * c3 + 2 * c3         # stride 2: 27 -> 14
    # 14 -> pool 3/2: (14-3)//2+1 = 6, so the first FC sees 6*6*c3 inputs
    fc1 = 6 * 6 * c3 * 512 + 512
    fc2 = 512 * 512 + 512
    return conv1 + dsc1 + dsc2 + fc1 + fc2


@pytest.mark.parametrize("width, expected", [(1, 7_483_296), (2, 14_884_768)])
def test_lmtcnn_parameter_count_matches_the_paper_layer_list(width, expected):
    assert _lmtcnn_params(width) == expected  # the hand count above, spelled out
    net = LMTCNN(width=width)
    assert _n_params(net) == expected
    assert net.out_features == 512 and net.fc[0].in_features == 6 * 6 * 384 * width


def test_lmtcnn_layers_follow_the_paper():
    net = LMTCNN()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0], c.out_channels, c.groups) for c in convs] == [
        (7, 4, 96, 1),       # conv1
        (3, 1, 96, 96),      # depthwise
        (1, 1, 256, 1),      # pointwise
        (3, 2, 256, 256),    # depthwise, stride 2
        (1, 1, 384, 1),      # pointwise
    ]
    assert sum(isinstance(m, torch.nn.LocalResponseNorm) for m in net.modules()) == 1
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 2
    spec = net.input_spec
    assert (spec.size, spec.resize, spec.channels) == (227, 256, 3)


def test_levi_hassner_parameter_count_matches_the_paper_layer_list():
    conv1 = 7 * 7 * 3 * 96 + 96        # 227 -> 56 -> pool (Caffe rounds up) 28 -> LRN
    conv2 = 5 * 5 * 96 * 256 + 256     # 28 (pad 2) -> pool 14 -> LRN
    conv3 = 3 * 3 * 256 * 384 + 384    # 14 (pad 1) -> pool 7
    fc1 = 7 * 7 * 384 * 512 + 512
    fc2 = 512 * 512 + 512
    assert _n_params(LeviHassner()) == conv1 + conv2 + conv3 + fc1 + fc2 == 11_410_944


def test_width_and_fc_are_config():
    net = instantiate(compose_train(["backbone=lmtcnn", "backbone.width=0.5",
                                     "backbone.fc=[256]"]).backbone)
    assert net.out_features == 256 and net.fc[0].in_features == 6 * 6 * 192
    bare = LeviHassner(fc=[])  # no FC layers: the flattened conv features
    assert bare.out_features == 7 * 7 * 384


@pytest.mark.parametrize("make, message", [
    (lambda: LMTCNN(width=0), "width multiplier must be > 0"),
    (lambda: LMTCNN(dropout=1.0), "dropout must be in"),
    (lambda: LeviHassner(input_size=16, resize=None), "input too small"),
    (lambda: LMTCNN(input_size=227, resize=200), r"resize \(200\) must be >= the crop"),
])
def test_wrong_values_are_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ---- timm ------------------------------------------------------------------------------------
def test_timm_backbone_features_follow_head_hidden_size_and_grey_input():
    net = TimmBackbone("resnet18", in_chans=1, input_size=64).eval()
    assert net.out_features == net.model.head_hidden_size == 512
    assert net.input_spec.channels == 1 and len(net.input_spec.mean) == 1
    assert net(torch.randn(1, 1, 64, 64)).shape == (1, 512)


def test_timm_backbone_unknown_name_suggests_real_ones():
    with pytest.raises(ValueError, match="unknown timm model 'resnet_nope'.*resnet"):
        TimmBackbone("resnet_nope")


def test_timm_backbone_loads_local_pretrained_weights(tmp_path):
    source = TimmBackbone("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(source.model.state_dict(), path)
    loaded = TimmBackbone("resnet18", pretrained_path=path)
    for key, value in source.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key]), key


def test_timm_backbone_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        TimmBackbone("resnet18", pretrained_path=tmp_path / "nope.pth")
