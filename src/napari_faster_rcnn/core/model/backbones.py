"""Backbones: ResNets (with or without FPN), a slim ResNet-18 for CPUs, and MobileNetV3-Large FPN.

Built from torchvision's classification networks with the public
``BackboneWithFPN``, so that the state-dict keys are torchvision's own
(``backbone.body.layer1.0.conv1.weight``, ``backbone.fpn.inner_blocks.0...``)
and COCO detector weights load as they are. Without FPN the backbone is the
network cut after one stage, under the same ``body`` name.

Two choices follow torchvision's detection models and matter for training:

- **BatchNorm.** Pretrained "v1" models freeze BatchNorm statistics
  (``FrozenBatchNorm2d``): detection batches are too small to estimate them.
  From scratch there are no statistics to keep, so every variant uses ordinary,
  trainable ``BatchNorm2d``; so does "v2", as torchvision's ``_v2`` models do.
- **Frozen blocks.** From pretrained weights the first blocks stay fixed (3 of
  5 trainable by default); from scratch every block trains.

The architecture depends on the config alone (not on which weights are then
loaded), so a checkpoint's config rebuilds exactly the modules it saved.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision import models
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.resnet import BasicBlock
from torchvision.ops import misc as misc_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.model.config_rules import (
    RESNET_BACKBONES,
    TRAINABLE_LAYERS_MAX,
    TRAINABLE_LAYERS_PRETRAINED_DEFAULT,
)

__all__ = ["SlimResNet", "build_backbone", "classification_network", "frozen_batch_norm", "trainable_layers"]

#: Channels of the four stages of ``resnet18_slim`` (ResNet-18 has 64, 128, 256, 512).
SLIM_WIDTHS = (32, 64, 128, 256)


def frozen_batch_norm(config: ModelConfig) -> bool:
    """Whether the backbone's BatchNorm keeps fixed statistics (see the module docstring)."""
    if config.frozen_batch_norm is not None:
        return config.frozen_batch_norm
    return config.pretrained and config.heads == "v1"


def trainable_layers(config: ModelConfig) -> int:
    """How many backbone blocks train, counted from the top."""
    if config.trainable_backbone_layers is not None:
        return config.trainable_backbone_layers
    if config.pretrained:
        return TRAINABLE_LAYERS_PRETRAINED_DEFAULT
    return TRAINABLE_LAYERS_MAX[config.backbone]


class SlimResNet(nn.Module):
    """A ResNet-18 with ``widths`` channels in its stages; the same module names as torchvision's.

    Only the layers used are built (``stages``), so a cut network has no unused
    parameters. There is no classifier: it only serves as a detection backbone.
    """

    def __init__(self, widths=SLIM_WIDTHS, stages: int = 4, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = widths[0]
        for index in range(stages):
            stride = 1 if index == 0 else 2
            width = widths[index]
            downsample = None
            if stride != 1 or channels != width:
                downsample = nn.Sequential(
                    nn.Conv2d(channels, width, kernel_size=1, stride=stride, bias=False), norm_layer(width)
                )
            blocks = [BasicBlock(channels, width, stride, downsample, norm_layer=norm_layer),
                      BasicBlock(width, width, norm_layer=norm_layer)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
            channels = width
        for module in self.modules():  # as torchvision initializes its ResNets
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            if hasattr(self, name):
                x = getattr(self, name)(x)
        return x


def classification_network(config: ModelConfig) -> nn.Module:
    """The torchvision classifier the backbone is cut from (where ImageNet weights load)."""
    norm_layer = misc_ops.FrozenBatchNorm2d if frozen_batch_norm(config) else nn.BatchNorm2d
    if config.backbone == "resnet18_slim":
        return SlimResNet(SLIM_WIDTHS, stages=max(config.layers), norm_layer=norm_layer)
    constructor = getattr(models, config.backbone)
    return constructor(weights=None, norm_layer=norm_layer)


def build_backbone(config: ModelConfig, network: nn.Module | None = None) -> nn.Module:
    """The detection backbone of ``config``, with an ``out_channels`` attribute.

    Parameters
    ----------
    network
        The classifier from :func:`classification_network`, with its weights
        already loaded; a fresh one by default.
    """
    if network is None:
        network = classification_network(config)
    if config.backbone in RESNET_BACKBONES:
        return _resnet_backbone(config, network)
    return _mobilenet_backbone(config, network)


def _stage_channels(stage: nn.Sequential) -> int:
    last = stage[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


def _resnet_backbone(config: ModelConfig, network: nn.Module) -> nn.Module:
    count = trainable_layers(config)
    trained = ["layer4", "layer3", "layer2", "layer1", "conv1"][:count] + (["bn1"] if count == 5 else [])
    for name, parameter in network.named_parameters():
        if not any(name.startswith(prefix) for prefix in trained):
            parameter.requires_grad_(False)
    layers = config.layers
    if config.fpn:
        return BackboneWithFPN(
            network,
            return_layers={f"layer{layer}": str(index) for index, layer in enumerate(layers)},
            in_channels_list=[_stage_channels(getattr(network, f"layer{layer}")) for layer in layers],
            out_channels=config.out_channels or 256,
            extra_blocks=LastLevelMaxPool(),
            norm_layer=nn.BatchNorm2d if config.heads == "v2" else None,
        )
    last = layers[0]
    names = ["conv1", "bn1", "relu", "maxpool"] + [f"layer{k}" for k in range(1, last + 1)]
    body = nn.Sequential(OrderedDict((name, getattr(network, name)) for name in names))
    return SingleMapBackbone(body, _stage_channels(getattr(network, f"layer{last}")), config.out_channels)


def _mobilenet_backbone(config: ModelConfig, network: nn.Module) -> nn.Module:
    features = network.features
    # As torchvision: stage 0 is the stem, then every block that halves the resolution, then the last.
    stages = [0] + [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)] + [len(features) - 1]
    count = trainable_layers(config)
    freeze_before = len(features) if count == 0 else stages[len(stages) - count]
    for block in features[:freeze_before]:
        for parameter in block.parameters():
            parameter.requires_grad_(False)
    layers = config.layers
    return BackboneWithFPN(
        features,
        return_layers={str(stages[layer]): str(index) for index, layer in enumerate(layers)},
        in_channels_list=[features[stages[layer]].out_channels for layer in layers],
        out_channels=config.out_channels or 256,
        extra_blocks=LastLevelMaxPool(),
        norm_layer=nn.BatchNorm2d if config.heads == "v2" else None,
    )


class SingleMapBackbone(nn.Module):
    """A network cut after one stage, giving one feature map named ``"0"`` (no FPN).

    A stage wider than ``out_channels`` (default 256) is reduced by a 1x1
    convolution, as torchvision's MobileNet backbone without FPN does: the RPN's
    3x3 convolution and the box head's first layer grow with the square of the
    channels (a ResNet-50's 2048 would give them 38 and 100 million parameters).
    """

    def __init__(self, body: nn.Module, stage_channels: int, out_channels: int | None = None):
        super().__init__()
        self.body = body
        wanted = out_channels if out_channels is not None else min(stage_channels, 256)
        self.projection = nn.Conv2d(stage_channels, wanted, 1) if wanted != stage_channels else None
        self.out_channels = wanted

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.body(x)
        if self.projection is not None:
            x = self.projection(x)
        return OrderedDict([("0", x)])
