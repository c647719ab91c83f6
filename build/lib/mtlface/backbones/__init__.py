"""Backbones: an ``nn.Module`` that maps images to a flat feature vector.

Contract (checked by tests for every backbone config):
- ``forward(x: Tensor[B, in_chans, input_size, input_size]) -> Tensor[B, out_features]``
- attributes ``out_features`` and ``input_spec`` (what the data pipeline must feed it).
Hydra's ``_target_`` picks the class (e.g. ``mtlface.backbones.LMTCNN``); there is no registry.
"""

from mtlface.backbones.bknet import BKNet
from mtlface.backbones.levi_hassner import LeviHassner
from mtlface.backbones.lmtcnn import LMTCNN
from mtlface.backbones.spec import InputSpec
from mtlface.backbones.timm_backbone import TimmBackbone

__all__ = ["BKNet", "InputSpec", "LMTCNN", "LeviHassner", "TimmBackbone"]
