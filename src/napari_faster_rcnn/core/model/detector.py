"""``build_model(config)``: a torchvision Faster R-CNN from a :class:`.config.ModelConfig`.

The detector is torchvision's ``FasterRCNN`` assembled from its public parts:
a backbone (:mod:`.backbones`), an ``AnchorGenerator`` with the config's
anchors, an ``RPNHead``, RoIAlign over the backbone's maps, a box head
(torchvision's "v1" MLP or "v2" conv head) and a ``FastRCNNPredictor`` for the
config's classes. Weights (:mod:`.weights`) are loaded after the modules are
built, so the modules depend on the config alone: ``build_model(config,
weights="none")`` followed by ``load_state_dict`` restores a saved model
exactly, without touching the network.

:func:`feature_maps` tells which maps the RPN sees, with their names, strides,
channels and, for an image size, their grid, found by one small forward pass
of the backbone (cached per architecture) rather than from a table: torchvision's
MobileNetV3 FPN, for one, returns two maps of the same stride.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torchvision import models
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import misc as misc_ops

from napari_faster_rcnn.core.model.backbones import build_backbone, classification_network
from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.model.config_rules import COCO_ARCHITECTURES, ConfigError, check_weights_choice
from napari_faster_rcnn.core.model.weights import (
    DOWNLOAD_TIMEOUT_SECONDS,
    REPLACEABLE,
    fetch_weights,
    load_local_weights,
    load_matching,
)

__all__ = [
    "FeatureMap",
    "anchor_generator",
    "build_model",
    "feature_maps",
    "padded_image_size",
    "resized_image_size",
]

#: GeneralizedRCNNTransform pads every batch to a multiple of this.
SIZE_DIVISIBLE = 32

# ImageNet weights as torchvision's detection models use them (V1 for every ResNet).
_IMAGENET = {
    "resnet18": models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": models.ResNet50_Weights.IMAGENET1K_V1,
    "resnet101": models.ResNet101_Weights.IMAGENET1K_V1,
    "resnet152": models.ResNet152_Weights.IMAGENET1K_V1,
    "mobilenet_v3_large": models.MobileNet_V3_Large_Weights.IMAGENET1K_V1,
}
_COCO = {
    "fasterrcnn_resnet50_fpn": models.detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1,
    "fasterrcnn_resnet50_fpn_v2": models.detection.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
    "fasterrcnn_mobilenet_v3_large_fpn": models.detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
}


def anchor_generator(config: ModelConfig) -> AnchorGenerator:
    """torchvision's ``AnchorGenerator`` with the config's anchors (defaults filled in)."""
    sizes, ratios = config.anchors()
    return AnchorGenerator(sizes, ratios)


def build_model(config: ModelConfig, weights: str | None = None, *,
                download_timeout: float = DOWNLOAD_TIMEOUT_SECONDS) -> FasterRCNN:
    """A Faster R-CNN for ``config``, with its weights loaded.

    Parameters
    ----------
    config
        The architecture and settings. The modules depend on it alone.
    weights
        What to load, instead of ``config.weights``: ``"none"``, ``"imagenet"``
        (backbone), ``"coco"`` (whole detector with a new box predictor for
        ``config.classes``) or the path of a local weights file (a detector or a
        backbone state dict). Restoring a checkpoint: ``weights="none"``, then
        ``load_state_dict``.
    download_timeout
        Seconds a download of ImageNet or COCO weights waits for the network.

    Returns
    -------
    FasterRCNN
        In training mode, with ``model.config`` set to ``config``.

    Raises
    ------
    ConfigError
        When the weights asked for do not exist for this architecture.
    WeightsError
        When weights cannot be downloaded (the message says where to place the
        file by hand) or a local file does not fit.
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"build_model needs a ModelConfig, got {type(config).__name__}")
    weights = config.weights if weights is None else str(weights)
    check_weights_choice(config, weights)

    network = classification_network(config)
    if weights == "imagenet":
        state = fetch_weights(_IMAGENET[config.backbone], f"ImageNet weights for {config.backbone}",
                              download_timeout)
        load_matching(network, state, f"ImageNet weights for {config.backbone}", replaceable=("fc.", "classifier."))
    model = _assemble(config, build_backbone(config, network))
    if weights == "coco":
        name = COCO_ARCHITECTURES[(config.backbone, config.heads)]
        state = fetch_weights(_COCO[name], f"COCO weights for {name}", download_timeout)
        load_matching(model, state, f"COCO weights for {name}", replaceable=REPLACEABLE,
                      replace=("roi_heads.box_predictor.",))
        if name == "fasterrcnn_resnet50_fpn":  # as torchvision: these were trained with eps 0
            for module in model.modules():
                if isinstance(module, misc_ops.FrozenBatchNorm2d):
                    module.eps = 0.0
    elif weights not in ("none", "imagenet"):
        load_local_weights(model, weights, _describe(config))
    model.config = config
    return model


def _describe(config: ModelConfig) -> str:
    return f"{config.backbone}{' with FPN' if config.fpn else ''} (heads {config.heads}, {config.num_classes} classes)"


def _assemble(config: ModelConfig, backbone) -> FasterRCNN:
    anchors = anchor_generator(config)
    channels = backbone.out_channels
    names = [str(index) for index in range(len(config.layers))] if config.fpn else ["0"]
    resolution = config.roi_output_size
    if config.heads == "v2":
        rpn_head = RPNHead(channels, anchors.num_anchors_per_location()[0], conv_depth=2)
        box_head = FastRCNNConvFCHead((channels, resolution, resolution), [256, 256, 256, 256],
                                      [config.box_representation_size], norm_layer=torch.nn.BatchNorm2d)
    else:
        rpn_head = RPNHead(channels, anchors.num_anchors_per_location()[0])
        box_head = TwoMLPHead(channels * resolution**2, config.box_representation_size)
    return FasterRCNN(
        backbone,
        num_classes=None,
        min_size=config.min_size,
        max_size=config.max_size,
        image_mean=list(config.image_mean),
        image_std=list(config.image_std),
        rpn_anchor_generator=anchors,
        rpn_head=rpn_head,
        rpn_pre_nms_top_n_train=config.rpn_pre_nms_top_n_train,
        rpn_pre_nms_top_n_test=config.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_train=config.rpn_post_nms_top_n_train,
        rpn_post_nms_top_n_test=config.rpn_post_nms_top_n_test,
        rpn_nms_thresh=config.rpn_nms_thresh,
        rpn_fg_iou_thresh=config.rpn_fg_iou_thresh,
        rpn_bg_iou_thresh=config.rpn_bg_iou_thresh,
        rpn_batch_size_per_image=config.rpn_batch_size_per_image,
        rpn_positive_fraction=config.rpn_positive_fraction,
        rpn_score_thresh=config.rpn_score_thresh,
        box_roi_pool=MultiScaleRoIAlign(names, output_size=resolution, sampling_ratio=config.roi_sampling_ratio),
        box_head=box_head,
        box_predictor=FastRCNNPredictor(config.box_representation_size, config.num_classes),
        box_score_thresh=config.box_score_thresh,
        box_nms_thresh=config.box_nms_thresh,
        box_detections_per_img=config.box_detections_per_img,
        box_fg_iou_thresh=config.box_fg_iou_thresh,
        box_bg_iou_thresh=config.box_bg_iou_thresh,
        box_batch_size_per_image=config.box_batch_size_per_image,
        box_positive_fraction=config.box_positive_fraction,
    )


# -- what the model sees -------------------------------------------------------------------


def resized_image_size(config: ModelConfig, image_size: tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` of an image after the model's resize (``GeneralizedRCNNTransform``).

    The shorter side goes to ``min_size`` unless the longer would then pass
    ``max_size``; the same arithmetic as torchvision, so the sizes agree to the pixel.
    """
    height, width = (int(side) for side in image_size)
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {image_size}")
    scale = min(config.min_size / min(height, width), config.max_size / max(height, width))
    return int(height * scale), int(width * scale)


def padded_image_size(config: ModelConfig, image_size: tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` of the batch tensor: the resized image padded to a multiple of 32."""
    return tuple(math.ceil(side / SIZE_DIVISIBLE) * SIZE_DIVISIBLE for side in resized_image_size(config, image_size))


@dataclass(frozen=True)
class FeatureMap:
    """One feature map the RPN places anchors on.

    Attributes
    ----------
    name
        Its key in the backbone's output, as torchvision names it
        (``"0"``.. and ``"pool"`` with FPN, ``"0"`` without).
    stride
        Pixels of the resized image per cell of the map.
    channels
        Its number of channels.
    height, width
        Its grid for a given image size (``None`` without one).
    anchor_stride
        ``(vertical, horizontal)`` spacing of its anchors for that image size:
        torchvision's ``AnchorGenerator`` divides the padded size by the grid,
        which differs from ``stride`` on the pooled level when the padded size
        is not a multiple of 64.
    """

    name: str
    stride: int
    channels: int
    height: int | None = None
    width: int | None = None
    anchor_stride: tuple[int, int] | None = None


def feature_maps(config: ModelConfig, image_size: tuple[int, int] | None = None) -> list[FeatureMap]:
    """The feature maps of ``config``'s backbone, with their grids for an image of ``image_size``.

    ``image_size`` is ``(height, width)`` of the original image; the grids are
    those of the image after the model's resize and padding.
    """
    maps = _probe(_architecture(config))
    if image_size is None:
        return [FeatureMap(name, stride, channels) for name, stride, channels in maps]
    padded_height, padded_width = padded_image_size(config, image_size)
    result = []
    for name, stride, channels in maps:
        # Every stride-2 step (conv, pooling) maps n to ceil(n / 2), so the grid is ceil(size / stride).
        height, width = math.ceil(padded_height / stride), math.ceil(padded_width / stride)
        result.append(FeatureMap(name, stride, channels, height, width,
                                 (padded_height // height, padded_width // width)))
    return result


def _architecture(config: ModelConfig) -> ModelConfig:
    """The config reduced to what decides the backbone's maps (the cache key of :func:`_probe`)."""
    return ModelConfig(classes=("object",), backbone=config.backbone, fpn=config.fpn,
                       returned_layers=config.layers, out_channels=config.out_channels, heads=config.heads)


@functools.lru_cache(maxsize=32)
def _probe(architecture: ModelConfig) -> tuple[tuple[str, int, int], ...]:
    """``(name, stride, channels)`` of each map, from one forward pass of the backbone on 256 x 256."""
    side = 256
    backbone = build_backbone(architecture).eval()
    with torch.no_grad():
        output = backbone(torch.zeros(1, 3, side, side))
    maps = []
    for name, tensor in output.items():
        stride = side // tensor.shape[-1]
        if side % tensor.shape[-1] or stride & (stride - 1):
            raise ConfigError(f"{architecture.backbone} gives a map {name!r} of {tuple(tensor.shape)} for a "
                              f"{side} px input: not a power-of-two stride", "backbone")
        maps.append((str(name), stride, int(tensor.shape[1])))
    return tuple(maps)
