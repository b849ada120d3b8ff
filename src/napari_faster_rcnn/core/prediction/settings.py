"""The box head's post-processing for raw detections, the thresholds predictions start from,
and the device to run on (see :mod:`.prediction`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "RAW_DETECTIONS_PER_IMAGE",
    "RAW_SCORE_THRESHOLD",
    "DetectionSettings",
    "raw_detection_settings",
    "resolve_device",
    "starting_thresholds",
]

#: The box head's score threshold for raw detections.
RAW_SCORE_THRESHOLD = 0.01
#: At least this many raw detections per image are kept (the box head's cap): the ``cpu`` preset's
#: 300 proposals x 3 classes fit, so that thresholds applied afterwards give what the model would.
RAW_DETECTIONS_PER_IMAGE = 1000
#: torchvision's default box score threshold, meant for computing mAP rather than for showing boxes.
_TORCHVISION_BOX_SCORE_THRESHOLD = 0.05


@dataclass(frozen=True)
class DetectionSettings:
    """The box head's post-processing: torchvision's ``roi_heads`` attributes of the same names.

    Attributes
    ----------
    score_thresh : float
        Detections scoring at most this are dropped.
    nms_thresh : float
        Per-class NMS IoU threshold (1.0: NMS off).
    detections_per_img : int
        The best so many detections of an image are kept.
    """

    score_thresh: float
    nms_thresh: float
    detections_per_img: int

    @classmethod
    def of_model(cls, model) -> DetectionSettings:
        """The settings ``model`` runs with now."""
        heads = model.roi_heads
        return cls(float(heads.score_thresh), float(heads.nms_thresh), int(heads.detections_per_img))

    def apply(self, model) -> DetectionSettings:
        """Set these on ``model``'s box head; returns the settings it had, to restore them."""
        previous = DetectionSettings.of_model(model)
        heads = model.roi_heads
        heads.score_thresh = self.score_thresh
        heads.nms_thresh = self.nms_thresh
        heads.detections_per_img = self.detections_per_img
        return previous


def raw_detection_settings(
    config=None,
    score_threshold: float = RAW_SCORE_THRESHOLD,
    detections_per_image: int = RAW_DETECTIONS_PER_IMAGE,
) -> DetectionSettings:
    """The box head's post-processing relaxed for raw detections.

    The score threshold is ``score_threshold`` (or the config's
    ``box_score_thresh`` when that is lower), NMS is off (torchvision's
    ``nms_thresh`` 1.0) and at least ``detections_per_image`` detections (or
    the config's ``box_detections_per_img`` when that is more) are kept.

    Parameters
    ----------
    config : ModelConfig, optional
        The model's config (``model.config``, ``LoadedCheckpoint.config``).
    """
    own_score = getattr(config, "box_score_thresh", score_threshold)
    own_cap = getattr(config, "box_detections_per_img", detections_per_image)
    return DetectionSettings(
        score_thresh=float(min(score_threshold, own_score)),
        nms_thresh=1.0,
        detections_per_img=int(max(detections_per_image, own_cap)),
    )


def starting_thresholds(config=None):
    """The thresholds predictions start from, for a model's ``config``.

    NMS at the config's ``box_nms_thresh``; the score threshold at the config's
    ``box_score_thresh`` when it sets one other than torchvision's default of
    0.05 (a value meant for computing mAP, which shows many weak boxes), else 0.5.
    """
    from napari_faster_rcnn.core.prediction.thresholds import Thresholds

    if config is None:
        return Thresholds(0.5, 0.5)
    score = float(config.box_score_thresh)
    if abs(score - _TORCHVISION_BOX_SCORE_THRESHOLD) < 1e-12:
        score = 0.5
    return Thresholds(score_threshold=score, nms_threshold=float(config.box_nms_thresh))


def resolve_device(name: str | None = "auto") -> str:
    """``"auto"`` (or None) as ``"cuda"``, ``"mps"`` or ``"cpu"``, whichever this machine has first.

    Raises
    ------
    ValueError
        For a device this machine does not have (``"cuda"`` without a GPU).
    """
    import torch

    name = "auto" if name is None else str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = name.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: this machine has no CUDA GPU that torch can use (choose cpu or auto)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r}: Apple's MPS is not available here (choose cpu or auto)")
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N or mps)")
    return name
