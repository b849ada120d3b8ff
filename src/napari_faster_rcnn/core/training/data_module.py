"""The Lightning data module of a training run: :class:`DetectionDataModule`.

It turns a dataset folder (or samples held in memory, as the layers open in
napari give them) into train and validation loaders of
:class:`~.dataset.DetectionDataset`:

- one folder (``root``) is split into train, validation and test parts by
  ratio and seed (:mod:`.splits`: the same images always land in the same
  part); the test part is held out and never seen by ``fit``;
- or a separate validation folder (``val_root``): then all of ``root`` trains.

**Classes** are known as soon as the module exists (:attr:`DetectionDataModule.classes`:
the given list, checked against every label, or the data's own), so the
command line can hand them to the model before the model is built.

**Augmentation** (:class:`~.transforms.AugmentationConfig`) applies to the train
part only. Its random state is seeded from ``seed`` and the process's rank, so
that the processes of a DDP run (and workers, which the dataset reseeds per
worker) draw different augmentations, reproducibly.

The datasets are built once, when first needed, and images are decoded into
the in-memory cache in :meth:`~DetectionDataModule.setup` (``cache``).

**Tiles** (``tile_size``, see :mod:`.tiling`): images larger than a tile are
trained on random tiles and validated as tiled prediction predicts them (its
tiles, merged, whole images measured: see :mod:`.validation`), so that the
model sees objects at the image's own scale. The default (None) is the model's
training scale, its ``max_size`` (known in :meth:`~DetectionDataModule.setup`
from the trainer's model); 0 trains on whole images, resized by the model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
import torch

from napari_faster_rcnn.core.prediction.tiles import DEFAULT_OVERLAP, default_tiling
from napari_faster_rcnn.core.training.dataset import DetectionDataset, collate_detections, split_datasets
from napari_faster_rcnn.core.training.samples import as_training_sample, dataset_classes, folder_samples
from napari_faster_rcnn.core.training.splits import check_ratios
from napari_faster_rcnn.core.training.tile_dataset import TileDataset
from napari_faster_rcnn.core.training.tiling import MIN_VISIBLE, boxes_as_tile, check_tile_size
from napari_faster_rcnn.core.training.transforms import AugmentationConfig, build_transform

__all__ = ["DetectionDataModule", "default_workers"]


def default_workers() -> int:
    """DataLoader workers when none are given: one CPU is left to the training loop, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(0, min(4, cpus - 1))


class DetectionDataModule(pl.LightningDataModule):
    """Train and validation loaders of a dataset folder (or of samples, see :meth:`from_samples`).

    Parameters
    ----------
    root
        The dataset folder (input/ + target/, or images with their annotation
        files beside them).
    val_root
        A separate validation folder; then ratios is not used and all of root
        trains.
    ratios
        Train, validation and test fractions of root (test held out).
    seed
        Seeds the split and the augmentation.
    classes
        The class list in class-id order; default: the data's (the classes the
        files name, then labels as first seen). Every label must be one of them.
    augmentation
        Random augmentation of the training images (an AugmentationConfig,
        or a mapping of its fields).
    batch_size, val_batch_size
        Images per step (validation: default batch_size).
    num_workers
        DataLoader worker processes; default: one per CPU but one, at most 4.
    cache
        Decode every image once and keep it in memory.
    include_unlabeled
        Train on images without an annotation file as images without objects.
    tile_size
        Train and validate on square tiles of this many pixels cut from images
        larger than that (smaller images are used whole). None (default): the
        model's ``max_size``, so that tiles are seen at the image's own scale;
        0: whole images, resized by the model as before.
    min_visible
        A box cut by a tile border is kept (clipped) when at least this
        fraction of its area is inside the tile, dropped otherwise.
    """

    def __init__(
        self,
        root: str | None = None,
        val_root: str | None = None,
        ratios: tuple[float, ...] = (0.8, 0.1, 0.1),
        seed: int = 0,
        classes: list[str] | None = None,
        augmentation: AugmentationConfig = AugmentationConfig(),  # noqa: B008 - frozen, so safe to share
        batch_size: int = 4,
        val_batch_size: int | None = None,
        num_workers: int | None = None,
        cache: bool = True,
        include_unlabeled: bool = False,
        tile_size: int | None = None,
        min_visible: float = MIN_VISIBLE,
    ):
        super().__init__()
        self.tile_size = None if tile_size is None else check_tile_size(tile_size)
        if isinstance(min_visible, bool) or not 0.0 <= float(min_visible) <= 1.0:
            raise ValueError(f"min_visible must be a fraction in [0, 1], got {min_visible!r}")
        self.min_visible = float(min_visible)
        #: The tile size in use (``tile_size``, or the model's ``max_size`` once set up); 0: whole images.
        self.used_tile_size = self.tile_size or 0
        self.root = None if root is None else Path(root)
        self.val_root = None if val_root is None else Path(val_root)
        self.ratios = check_ratios(ratios)
        self.seed = int(seed)
        self.given_classes = None if classes is None else [str(name) for name in classes]
        if isinstance(classes, str):
            raise ValueError(f"classes must be a list of class names, got the single string {classes!r}")
        if augmentation is None or isinstance(augmentation, AugmentationConfig):
            self.augmentation = augmentation or AugmentationConfig()
        else:  # a mapping of its fields
            self.augmentation = AugmentationConfig.from_dict(augmentation)
        for name, value in (("batch_size", batch_size), ("val_batch_size", val_batch_size)):
            if value is not None and (int(value) != value or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if num_workers is not None and (int(num_workers) != num_workers or num_workers < 0):
            raise ValueError(f"num_workers must be a whole number >= 0, got {num_workers!r}")
        self.batch_size = int(batch_size)
        self.val_batch_size = int(val_batch_size or batch_size)
        self.num_workers = default_workers() if num_workers is None else int(num_workers)
        self.cache = bool(cache)
        self.include_unlabeled = bool(include_unlabeled)
        self._samples = None
        self._val_samples = None
        self._parts: tuple | None = None
        # Plain values (weights-only checkpoints). Lightning merges these with the model's, so
        # "classes" is left out unless given (then the model's are the same, or the run stops).
        hyperparameters = {
            "root": None if root is None else str(root),
            "val_root": None if val_root is None else str(val_root),
            "ratios": list(self.ratios),
            "seed": self.seed,
            "augmentation": self.augmentation.to_dict(),
            "batch_size": self.batch_size,
            "val_batch_size": self.val_batch_size,
            "num_workers": self.num_workers,
            "cache": self.cache,
            "include_unlabeled": self.include_unlabeled,
            "tile_size": self.tile_size,
            "min_visible": self.min_visible,
        }
        if self.given_classes is not None:
            hyperparameters["classes"] = self.given_classes
        self.save_hyperparameters(hyperparameters)

    @classmethod
    def from_samples(cls, samples: Sequence, val_samples: Sequence | None = None, **options) -> DetectionDataModule:
        """A data module of samples in memory (:class:`~.samples.TrainingSample`, or
        ``(image path, annotation)`` pairs), split by ``ratios`` unless ``val_samples`` are given."""
        module = cls(**options)
        module._samples = [as_training_sample(sample) for sample in samples]
        module._val_samples = None if val_samples is None else [as_training_sample(s) for s in val_samples]
        if not module._samples:
            raise ValueError("no training samples")
        return module

    # -- the datasets --------------------------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        """The class list the model must predict, in class-id order."""
        return list(self._datasets()[0].classes)

    @property
    def training_items(self) -> list:
        """``((height, width), Annotation)`` of every training image (not validation or test): what
        the model's automatic sizing (``auto``) fits to; the command line links them into the model.

        With a ``tile_size`` given, an image larger than a tile counts as one tile holding all its
        boxes (see :func:`~.tiling.boxes_as_tile`): the model is trained on tiles, each resized by the
        model as a whole image would be, so the sizes and anchors are fitted to the tiles (fitting
        them to the whole image would enlarge each tile's boxes far past the anchors chosen)."""
        items = self.train_dataset.size_items()
        if not self.tile_size:
            return items
        return [boxes_as_tile(size, annotation, self.tile_size) for size, annotation in items]

    @property
    def train_dataset(self) -> DetectionDataset:
        return self._datasets()[0]

    @property
    def val_dataset(self) -> DetectionDataset:
        return self._datasets()[1]

    @property
    def test_dataset(self) -> DetectionDataset | None:
        """The held-out part of a split (None with a separate validation set)."""
        return self._datasets()[2]

    def _datasets(self) -> tuple:
        if self._parts is None:
            self._parts = self._build()
        return self._parts

    def _build(self) -> tuple:
        samples = self._samples
        if samples is None:
            if self.root is None:
                raise ValueError("no training data: give the dataset folder (data.root)")
            samples = folder_samples(self.root, self.include_unlabeled)
        val_samples = self._val_samples
        if val_samples is None and self.val_root is not None:
            val_samples = folder_samples(self.val_root, self.include_unlabeled)
        if val_samples is None:
            return split_datasets(samples, self.ratios, self.seed, self.given_classes)
        classes = self.given_classes or dataset_classes([*samples, *val_samples])
        train = DetectionDataset(samples, classes)
        return train, DetectionDataset(val_samples, classes), None

    def describe(self) -> str:
        """A few lines on the parts: images, boxes, classes, and boxes clipped or dropped."""
        train, validation, test = self._datasets()
        lines = [f"train: {train.report()}", f"validation: {validation.report()}"]
        if test is not None and len(test):
            lines.append(f"test (held out): {test.report()}")
        return "\n".join(lines)

    # -- Lightning -----------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        train, validation, _ = self._datasets()
        rank = self.trainer.global_rank if self.trainer is not None else 0
        # Each process its own augmentations (workers are reseeded by the dataset per worker).
        train.transform = build_transform(self.augmentation, train=True, seed=self.seed + 1000 * rank)
        # the model's intensity rule (its config, so the checkpoint carries it to prediction)
        model = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        rule = getattr(getattr(model, "config", None), "normalization", None)
        if rule is not None:
            for dataset in (train, validation):
                dataset.normalization = rule
        # and its channels (None: gray, RGB and RGBA as they are)
        config = getattr(model, "config", None)
        if config is not None:
            for dataset in (train, validation):
                dataset.channels = config.channels
        self.used_tile_size = self.resolve_tile_size()
        # what the run trained on, for the checkpoint (tiled prediction defaults from it)
        self.hparams["training_tile_size"] = self.used_tile_size
        if self.cache:
            train.fill_cache()
            validation.fill_cache()

    def resolve_tile_size(self) -> int:
        """``tile_size``, or for None the trainer's model's ``max_size`` (0 without a model)."""
        if self.tile_size is not None:
            return self.tile_size
        model = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        config = getattr(model, "config", None)
        return check_tile_size(getattr(config, "max_size", 0) or 0)

    def tiles(self, dataset: DetectionDataset, train: bool):
        """``dataset`` as the loaders give it: tiles of ``used_tile_size``, or itself for whole images."""
        if not self.used_tile_size:
            return dataset
        overlap = DEFAULT_OVERLAP if train else self.validation_overlap()
        return TileDataset(dataset, self.used_tile_size, train=train, min_visible=self.min_visible, overlap=overlap)

    def validation_overlap(self) -> float:
        """The overlap of the validation tiles: the one the model will predict large images with by default
        (:func:`~napari_faster_rcnn.core.prediction.tiles.default_tiling` of the training images as the
        checkpoint records them, a tile's size at most), so that validation measures what ``predict`` gives."""
        model = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        record = self.training_images_record()
        if record is None:
            return DEFAULT_OVERLAP
        return default_tiling(getattr(model, "config", None), record).overlap

    def training_images_record(self) -> dict | None:
        """What checkpoints record of the training images (:meth:`DetectionDataset.size_record`; a tile's
        size at most when the run trains on tiles, so that tiled prediction defaults to the scale of
        training); None without images."""
        record = self.train_dataset.size_record()
        tile = int(self.used_tile_size or 0)
        if record is not None and tile:  # trained on tiles: what the model saw were tiles at most this size
            record = {**record, "height": min(record["height"], tile), "width": min(record["width"], tile)}
        return record

    def train_dataloader(self):
        return self._loader(self.tiles(self.train_dataset, train=True), self.batch_size, shuffle=True)

    def val_dataloader(self):
        if not len(self.val_dataset):
            raise ValueError(
                f"the validation part has no images (split ratios {', '.join(f'{r:g}' for r in self.ratios)}); "
                "give it a ratio above 0 or a separate validation folder, or turn validation off"
            )
        return self._loader(self.tiles(self.val_dataset, train=False), self.val_batch_size, shuffle=False)

    def test_dataloader(self):
        test = self.test_dataset
        if test is None or not len(test):
            raise ValueError("this data module has no test part (a separate validation set, or a test ratio of 0)")
        return self._loader(self.tiles(test, train=False), self.val_batch_size, shuffle=False)

    def _loader(self, dataset, batch_size: int, shuffle: bool):
        from lightning.pytorch.accelerators import CUDAAccelerator

        workers = self.num_workers
        pin = self.trainer is not None and isinstance(self.trainer.accelerator, CUDAAccelerator)
        return torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_detections, num_workers=workers,
            persistent_workers=workers > 0, pin_memory=pin,
        )
