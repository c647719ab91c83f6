import pytest
import torch
from hydra.utils import instantiate

from conftest import compose_train
from mtlface.backbones import BKNet, TimmBackbone
from mtlface.config import group_options


@pytest.mark.parametrize("name", group_options("backbone"))
def test_every_backbone_config_honours_the_contract(name):
    backbone = instantiate(compose_train([f"backbone={name}"]).backbone).eval()
    spec = backbone.input_spec
    x = torch.randn(2, spec.channels, spec.size, spec.size)
    with torch.no_grad():
        out = backbone(x)
    assert out.shape == (2, backbone.out_features)
    assert torch.isfinite(out).all()


def test_bknet_is_the_published_architecture():
    net = BKNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128, 256, 256, 256]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 4
    assert net.out_features == 3 * 3 * 256  # 48 -> 3 after four 2x2 pools
    assert (net.input_spec.size, net.input_spec.channels) == (48, 1)


def test_bknet_rejects_an_input_size_the_pools_cannot_divide():
    with pytest.raises(ValueError, match="multiple of 16"):
        BKNet(input_size=50)


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
