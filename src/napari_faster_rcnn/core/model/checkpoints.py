"""Training checkpoints, read without running code from them.

A checkpoint of :class:`~.training.DetectorModule` is one file that is all
prediction needs: Lightning's ``state_dict`` (the detector's tensors under
``model.``) and a ``napari_faster_rcnn`` entry with the model config, the
class names, the validation metrics, the augmentation and the training images'
sizes, all plain data.
:func:`load_checkpoint` rebuilds the detector from it with no network and no
code from the file.

Every read, here and when Lightning resumes a run (:class:`SafeCheckpointIO`,
which the trainers of this package use), is ``torch.load(weights_only=True)``
with the small allowlist of :mod:`.safe_load` (plain numpy arrays). What
Lightning 2.x writes into a checkpoint of this module needs nothing more:
tensors, dicts, lists, strings and numbers (the loops', optimizer's,
schedule's and callbacks' states, and hyper-parameters this module keeps
plain). A file that would import anything else (a pickled object or function,
as a tampered checkpoint would carry) is refused with
:class:`CheckpointError`, which names the file and what it would have imported;
nothing in it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch.plugins.io import TorchCheckpointIO

from napari_faster_rcnn.core.data.channels import channels_seen
from napari_faster_rcnn.core.data.intensity import Normalization
from napari_faster_rcnn.core.data.safe_load import load_torch_file
from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.model.config_rules import ConfigError

__all__ = ["CheckpointError", "LoadedCheckpoint", "SafeCheckpointIO", "load_checkpoint", "read_checkpoint"]

_KEY = "napari_faster_rcnn"  # training.CHECKPOINT_KEY, without importing Lightning's module code here
_PREFIX = "model."


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; ``str()`` names the file and the reason."""


def read_checkpoint(path: str | Path) -> dict:
    """The contents of a checkpoint file, loaded weights-only onto the CPU.

    Raises
    ------
    CheckpointError
        When the file is missing, unreadable, or refused (naming what it would import).
    """
    path = Path(path)
    loaded = load_torch_file(path, "checkpoint", CheckpointError)
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{path}: not a training checkpoint (it holds a {type(loaded).__name__})")
    return dict(loaded)


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with every load weights-only (:func:`read_checkpoint`).

    Resuming a run (``Trainer.fit(ckpt_path=...)``) reads the file through this,
    whatever ``weights_only`` the caller asked for.
    """

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return read_checkpoint(path)


@dataclass
class LoadedCheckpoint:
    """A detector restored from a checkpoint (see :func:`load_checkpoint`).

    Attributes
    ----------
    path : Path
    model : torchvision FasterRCNN
        In eval mode, on the device asked for; ``model.config`` is :attr:`config`.
    config : ModelConfig
    classes : list of str
        Class id ``k`` (from 1) is ``classes[k - 1]``.
    epoch, global_step : int
        Where training was when the file was written.
    metrics : dict
        The validation metrics of that epoch (``val/voc_map``, ``val/coco_map``, ...).
    augmentation : dict or None
        The training's augmentation settings.
    hyperparameters : dict
        The module's (optimizer, schedule, ...).
    training_images : dict or None
        The training images' median ``height`` and ``width`` and the 95th
        percentile of their boxes' longer side (``box_side``), in pixels; None
        in checkpoints written before it was recorded.
    """

    path: Path
    model: object = field(repr=False)
    config: ModelConfig
    classes: list[str]
    epoch: int
    global_step: int
    metrics: dict[str, float]
    augmentation: dict | None = None
    hyperparameters: dict = field(default_factory=dict, repr=False)
    version: str | None = None
    training_images: dict | None = None

    def description(self) -> str:
        """Classes, where training was, its validation metrics and the model, in a few lines."""
        config, metrics = self.config, self.metrics
        lines = [f"{len(self.classes)} classes: {', '.join(self.classes)}", f"epoch {self.epoch}, step {self.global_step}"]
        shown = [f"{label} {metrics[key]:.3f}" for key, label in (("val/voc_map", "VOC mAP"), ("val/coco_map", "COCO mAP"))
                 if key in metrics and metrics[key] == metrics[key]]
        if shown:
            lines[-1] += " · validation " + ", ".join(shown)
        size = (f"images resized to {config.min_size} px" if config.min_size == config.max_size else
                f"images resized to a short side of {config.min_size} px, a long side of at most {config.max_size}")
        lines.append(f"{config.backbone}{' FPN' if config.fpn else ''}, heads {config.heads}, {size}")
        lines.append(f"sees {channels_seen(config.channels)}; {Normalization.parse(config.normalization).describe()}")
        return "\n".join(lines)


def load_checkpoint(path: str | Path, device: str = "cpu") -> LoadedCheckpoint:
    """The detector in a training checkpoint, ready to predict.

    Parameters
    ----------
    path
        A checkpoint written by training (``best.ckpt``, ``last.ckpt``).
    device
        Where to put the model (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).

    Raises
    ------
    CheckpointError
        For a missing, unreadable or refused file, one without a model config,
        or weights that do not fit the config; the message names the file.
    """
    from napari_faster_rcnn.core.model.detector import build_model

    path = Path(path)
    checkpoint = read_checkpoint(path)
    section = checkpoint.get(_KEY)
    hyperparameters = dict(checkpoint.get("hyper_parameters") or {})
    values = (section or {}).get("config") or hyperparameters.get("config")
    if not isinstance(values, Mapping) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path}: not a napari-faster-rcnn training checkpoint (no model config and weights in it); a file "
            "of weights alone can be a model config's weights"
        )
    if "normalization" not in values:  # saved before the option: scaled by the type's own range
        values = {**values, "normalization": "none"}
    try:
        config = ModelConfig.from_dict(values)
    except ConfigError as error:
        raise CheckpointError(f"{path}: the model config in it is not valid: {error}") from None
    state = {key[len(_PREFIX):]: value for key, value in checkpoint["state_dict"].items() if key.startswith(_PREFIX)}
    model = build_model(config, weights="none")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise CheckpointError(f"{path}: its weights do not fit the model its config describes: "
                              f"{' '.join(first[:3])[:400]}") from None
    model.eval().to(device)
    section = section or {}
    return LoadedCheckpoint(
        path=path,
        model=model,
        config=config,
        classes=list(config.classes),
        epoch=int(checkpoint.get("epoch", 0)),
        global_step=int(checkpoint.get("global_step", 0)),
        metrics={str(key): float(value) for key, value in (section.get("metrics") or {}).items()},
        augmentation=section.get("augmentation"),
        hyperparameters=hyperparameters,
        version=section.get("version"),
        training_images=_size_record(section.get("training_images")),
    )


def checkpoint_classes(path: str | Path) -> list[str]:
    """The class list of a training checkpoint, in class-id order, without building its model.

    Raises
    ------
    CheckpointError
        For a missing, unreadable or refused file, or one without a valid model config.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path)
    values = (checkpoint.get(_KEY) or {}).get("config") or dict(checkpoint.get("hyper_parameters") or {}).get("config")
    if not isinstance(values, Mapping):
        raise CheckpointError(f"{path}: not a napari-faster-rcnn training checkpoint (no model config in it)")
    try:
        return list(ModelConfig.from_dict(values).classes)
    except ConfigError as error:
        raise CheckpointError(f"{path}: the model config in it is not valid: {error}") from None


def _size_record(record) -> dict | None:
    """The ``training_images`` entry with numbers only (None when absent or malformed)."""
    if not isinstance(record, Mapping):
        return None
    try:
        return {key: float(record[key]) for key in ("height", "width", "box_side")}
    except (KeyError, TypeError, ValueError):
        return None
