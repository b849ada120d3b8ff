"""Ground truth and predictions read from two folders and paired by file name, for evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation


@dataclass
class EvaluationFolders:
    """Ground truth and predictions read from two folders, paired by file name (sorted)."""

    names: list[str]
    ground_truths: list[Annotation]
    predictions: list[Annotation]
    notes: list[str] = field(default_factory=list)  # what was left out, for the user
    # (height, width) of each image from its file's header; None where the ground truth has no image
    image_sizes: list[tuple[int, int] | None] = field(default_factory=list)


def load_evaluation_folders(ground_truth_folder, prediction_folder) -> EvaluationFolders:
    """Read a ground-truth dataset folder and a folder of predictions, paired by file name.

    Every image of the ground truth that has an annotation file is evaluated
    (with its size, read from the image file's header, where there is one);
    one without a prediction file counts as predicted empty (its objects are
    missed). Prediction files without ground truth are left out. Both are
    listed in ``notes``.

    Raises
    ------
    ValueError
        (``DatasetError``, ``AnnotationError``) naming the folder or file: no
        ground truth, no file name in common, an unreadable file, a prediction
        without scores.
    """
    from napari_faster_rcnn.core.data.annotations import load_annotation
    from napari_faster_rcnn.core.data.folders import DatasetError, discover_dataset
    from napari_faster_rcnn.core.data.images import image_info

    truth = discover_dataset(ground_truth_folder)
    predicted = discover_dataset(prediction_folder)
    truth_files = {s.name: s.annotation for s in truth.samples if s.annotation is not None}
    predicted_files = {s.name: s.annotation for s in predicted.samples if s.annotation is not None}
    if not truth_files:
        raise DatasetError(truth.root, "no ground-truth annotation files")
    names = sorted(truth_files)
    if not set(names) & set(predicted_files):
        raise DatasetError(
            predicted.root, f"no prediction file is named after an image of {truth.root} (e.g. {names[0]}.pt)"
        )
    notes = []
    unlabeled = sum(s.annotation is None for s in truth.samples)
    if unlabeled:
        notes.append(f"{unlabeled} image(s) of {truth.root} have no annotation file and were left out")
    missing = [name for name in names if name not in predicted_files]
    if missing:
        notes.append(f"{len(missing)} image(s) have no prediction file and count as predicting nothing: "
                     + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    extra = sorted(set(predicted_files) - set(truth_files))
    if extra:
        notes.append(f"{len(extra)} prediction file(s) have no ground truth and were left out: "
                     + ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else ""))
    for path, reason in [*truth.skipped, *predicted.skipped]:
        notes.append(f"skipped {path}: {reason}")
    ground_truths = [load_annotation(truth_files[name]) for name in names]
    truth_images = {s.name: s.image for s in truth.samples if s.annotation is not None}
    image_sizes = []
    for name in names:
        size = None
        if truth_images.get(name) is not None:
            try:
                size = image_info(truth_images[name])[:2]
            except (OSError, ValueError) as error:
                notes.append(f"{truth_images[name]}: size unknown, its boxes are not checked against it ({error})")
        image_sizes.append(size)
    predictions = []
    for name in names:
        if name not in predicted_files:
            predictions.append(Annotation(np.zeros((0, 4)), [], np.zeros(0)))
            continue
        annotation = load_annotation(predicted_files[name])
        if annotation.scores is None and len(annotation):
            raise ValueError(f"{predicted_files[name]}: predictions need scores (a 'scores' key), to be ranked")
        predictions.append(annotation)
    return EvaluationFolders(names, ground_truths, predictions, notes, image_sizes)
