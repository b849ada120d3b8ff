"""The model configuration: one small dataclass of plain values that rebuilds a detector.

A :class:`ModelConfig` names everything :func:`.model.build_model` needs: the
classes, the backbone and its feature pyramid, the anchors, the resize and
normalization of the images, the RPN and box-head settings people tune, what
is trained and which weights to start from. It holds only numbers, strings,
booleans, ``None`` and tuples of those, so that

- it saves to YAML (:meth:`ModelConfig.save_yaml`) and loads back with
  ``yaml.safe_load`` (:meth:`ModelConfig.load_yaml`);
- :meth:`ModelConfig.to_dict` (lists instead of tuples) goes into a Lightning
  checkpoint's hyper-parameters and loads back under
  ``torch.load(weights_only=True)``;
- it is frozen and hashable, so derived facts (feature-map strides) are cached
  per configuration.

Every value is checked when the config is made (:mod:`.config_rules`), with
:class:`ConfigError` naming the field and the reason. The defaults are
torchvision's ``fasterrcnn_resnet50_fpn``; :func:`preset` gives named starting
points, among them the small ``"cpu"`` model that trains from scratch in
minutes on a laptop.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from napari_faster_rcnn.core.model.config_rules import (
    DEFAULT_ASPECT_RATIOS,
    RESNET_BACKBONES,
    ConfigError,
    coerce_field,
    default_layers,
    validate,
)

__all__ = [
    "PRESETS",
    "ModelConfig",
    "preset",
]


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a Faster R-CNN here; defaults are torchvision's ResNet-50 FPN.

    Class id ``k`` (from 1) is ``classes[k - 1]``; 0 is the background. Sequences
    are stored as tuples; :meth:`to_dict` gives lists. See the README's "Models"
    section for what each field does.
    """

    classes: tuple[str, ...]
    backbone: str = "resnet50"
    fpn: bool = True
    #: Backbone stages that feed the FPN (ResNet 1-4, default all), or the single stage
    #: whose output the detector uses without FPN (default the last, 4). Stages past the
    #: last one named are not built.
    returned_layers: tuple[int, ...] | None = None
    #: Channels of the maps the RPN and the box head see: the FPN's width (None: 256); without
    #: FPN, a 1x1 convolution brings the stage to this many (None: to 256 when it has more,
    #: as torchvision's MobileNet backbone does; a ResNet-50's last stage has 2048).
    out_channels: int | None = None
    heads: str = "v1"
    #: Anchor sizes (pixels of the resized image) and aspect ratios (height / width), one
    #: tuple per feature map; None for the backbone's default (see :meth:`anchors`).
    anchor_sizes: tuple[tuple[float, ...], ...] | None = None
    aspect_ratios: tuple[tuple[float, ...], ...] | None = None
    min_size: int = 800
    max_size: int = 1333
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    #: Proposal caps: the RPN keeps the ``pre`` best-scoring anchors per feature map before its NMS
    #: and the ``post`` best after it, in training and in prediction (validation counts as test).
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    rpn_fg_iou_thresh: float = 0.7
    rpn_bg_iou_thresh: float = 0.3
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_score_thresh: float = 0.0
    #: RoIAlign: output grid of the box head's crops and bilinear samples per grid cell.
    roi_output_size: int = 7
    roi_sampling_ratio: int = 2
    box_representation_size: int = 1024
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    #: The most detections one image (or tile) gives. 300 rather than torchvision's 100, so that a
    #: crowded image or tile is not cut (COCO's benchmarks count only the best 100 of them).
    box_detections_per_img: int = 300
    box_fg_iou_thresh: float = 0.5
    box_bg_iou_thresh: float = 0.5
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    #: Backbone blocks trained, counted from the top (ResNet 0-5, MobileNetV3 0-6);
    #: None: all of them from scratch, 3 (torchvision's default) from pretrained weights.
    trainable_backbone_layers: int | None = None
    #: BatchNorm with fixed statistics in the backbone; None: frozen for pretrained "v1"
    #: models (as torchvision does), trainable BatchNorm from scratch and for "v2".
    frozen_batch_norm: bool | None = None
    #: "none", "imagenet" (backbone), "coco" (whole detector, new box predictor) or a file path.
    weights: str = "none"
    #: How image values become [0, 1] (see core/data/intensity.py): "auto" (8-bit / 255, anything
    #: else per-image percentiles 1 to 99.8), "percentiles[:LOW,HIGH]", "range:LOW,HIGH" or "none"
    #: (the type's own scale). Checkpoints saved without it read as "none", as they were trained.
    normalization: str = "auto"
    #: The image channels the detector sees, in order (see core/data/channels.py): None as before
    #: (gray repeated, RGB, RGBA without alpha; a multichannel image of more than 3 channels is
    #: refused), or 1 to 3 channel indices from 0: one is repeated to three, two get zeros as the third.
    channels: tuple[int, ...] | None = None

    def __post_init__(self):
        for item in dataclasses.fields(self):
            object.__setattr__(self, item.name, coerce_field(item.name, item.type, getattr(self, item.name)))
        validate(self)

    # -- derived values --------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """The number of classes the detector predicts, with the background."""
        return len(self.classes) + 1

    @property
    def layers(self) -> tuple[int, ...]:
        """``returned_layers`` with its default filled in."""
        return self.returned_layers if self.returned_layers is not None else default_layers(self.backbone, self.fpn)

    @property
    def feature_map_count(self) -> int:
        """Feature maps the RPN sees: one per FPN level plus the FPN's pooled level, or one."""
        return len(self.layers) + 1 if self.fpn else 1

    @property
    def pretrained(self) -> bool:
        """Whether training starts from weights (ImageNet, COCO or a file) rather than from scratch."""
        return self.weights != "none"

    def anchors(self) -> tuple[tuple[tuple[float, ...], ...], tuple[tuple[float, ...], ...]]:
        """``(sizes, aspect_ratios)`` as the model uses them, defaults filled in.

        Defaults follow torchvision: on a ResNet FPN one size per level, 8 times its
        stride (32 ... 512 for the usual five levels); on MobileNetV3's FPN and
        without FPN every map gets 32, 64, 128, 256 and 512. Aspect ratios default
        to 0.5, 1 and 2 on every map.
        """
        count = self.feature_map_count
        sizes = self.anchor_sizes
        if sizes is None:
            if self.fpn and self.backbone in RESNET_BACKBONES:
                sizes = tuple((8 * 2 ** (layer + 1),) for layer in self.layers)
                sizes += ((16 * 2 ** (self.layers[-1] + 1),),)  # the pooled level, stride x 2
            else:
                sizes = ((32, 64, 128, 256, 512),) * count
        ratios = self.aspect_ratios if self.aspect_ratios is not None else (DEFAULT_ASPECT_RATIOS,) * len(sizes)
        return sizes, ratios

    # -- plain values, YAML ------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The fields as plain Python values (lists for tuples), for YAML, JSON and checkpoints."""

        def plain(value):
            return [plain(entry) for entry in value] if isinstance(value, tuple) else value

        return {item.name: plain(getattr(self, item.name)) for item in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping) -> ModelConfig:
        """A config from plain values (as :meth:`to_dict` gives); missing fields take their default.

        Raises
        ------
        ConfigError
            For an unknown key, a missing ``classes``, or a bad value (naming the field).
        """
        if not isinstance(values, Mapping):
            raise ConfigError(f"a model config is a mapping of field names to values, got {type(values).__name__}")
        known = [item.name for item in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; fields are: {', '.join(known)}"
                raise ConfigError(f"unknown field{hint}", str(key))
        if "classes" not in values:
            raise ConfigError("is required (the class names, in class-id order from 1)", "classes")
        return cls(**dict(values))

    def replace(self, **changes) -> ModelConfig:
        """A copy with ``changes`` applied and checked, as :meth:`from_dict` checks them."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def save_yaml(self, path: str | Path) -> Path:
        """Write the config as YAML, atomically (temporary file, then rename)."""
        import yaml

        from napari_faster_rcnn.core.data.atomic_files import atomic_write_bytes

        path = Path(path)
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
        atomic_write_bytes(path, text.encode("utf-8"))
        return path

    @classmethod
    def load_yaml(cls, path: str | Path) -> ModelConfig:
        """Read a config written by :meth:`save_yaml` (or by hand); errors name the file."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: cannot read the model config: {error}") from None
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
        try:
            return cls.from_dict(values if values is not None else {})
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}", error.field) from None


#: Preset name -> what it is.
PRESETS = {
    "default": "ResNet-50 FPN with torchvision's settings, starting from COCO weights (downloaded once)",
    "mobilenet": "MobileNetV3-Large FPN from COCO weights: several times faster than ResNet-50, a little less accurate",
    "cpu": "a slim ResNet-18 cut after its second stage (stride 8, 64 channels, no FPN) with a light box head, "
    "for images near 128 px, trained from scratch: for CPU work, tests and the demo",
}


def preset(name: str, classes, **overrides) -> ModelConfig:
    """A named starting configuration (see :data:`PRESETS`) for ``classes``, with ``overrides``.

    Raises
    ------
    ConfigError
        For an unknown preset name or a bad override.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets are: {', '.join(PRESETS)}", "preset")
    values: dict = {"classes": classes}
    if name == "default":
        values.update(weights="coco")
    elif name == "mobilenet":
        values.update(backbone="mobilenet_v3_large", weights="coco", rpn_score_thresh=0.05)
    elif name == "cpu":
        values.update(CPU_PRESET)
    return ModelConfig.from_dict({**values, **overrides})


#: The "cpu" preset. Sized for objects of about 12-48 px in images of about 128 px (the
#: synthetic shapes); see benchmarks/bench_model_preset.py for its speed.
CPU_PRESET = {
    "backbone": "resnet18_slim",
    "fpn": False,
    "returned_layers": [2],
    "anchor_sizes": [[16, 24, 32, 48]],
    "aspect_ratios": [[0.5, 1.0, 2.0]],
    "min_size": 128,
    "max_size": 128,
    "rpn_pre_nms_top_n_train": 600,
    "rpn_post_nms_top_n_train": 300,
    "rpn_pre_nms_top_n_test": 600,
    "rpn_post_nms_top_n_test": 300,
    "rpn_batch_size_per_image": 128,
    "roi_sampling_ratio": 1,
    "box_representation_size": 256,
    "box_batch_size_per_image": 64,
    "weights": "none",
}
