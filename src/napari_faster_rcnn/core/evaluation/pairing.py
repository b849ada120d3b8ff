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
    names, ground_truths, predictions, image_sizes = labeled_planes_only(
        names, ground_truths, predictions, image_sizes, [predicted_files.get(name) for name in names], notes)
    return EvaluationFolders(names, ground_truths, predictions, notes, image_sizes)


def labeled_planes_only(names, ground_truths, predictions, image_sizes, prediction_files, notes):
    """Split each stack's annotation (see :class:`Annotation` ``planes``) into one entry per plane a
    person LABELED, named ``NAME[t]`` (``NAME[t,z]``): predictions on unlabeled planes are left out,
    never counted as false positives. 2-D images pass unchanged."""
    from napari_faster_rcnn.core.data.annotations import AnnotationError

    out = ([], [], [], [])
    left_out = 0
    for name, truth, predicted, size, source in zip(names, ground_truths, predictions, image_sizes, prediction_files):
        if not truth.is_stack:
            for values, value in zip(out, (name, truth, predicted, size)):
                values.append(value)
            continue
        if not predicted.is_stack and len(predicted):
            raise AnnotationError(source, f"predictions without 'planes' for the stack {name}")
        labeled = {tuple(plane) for plane in truth.labeled_planes.tolist()}
        if predicted.is_stack:
            left_out += sum(tuple(plane) not in labeled for plane in predicted.planes.tolist())
        for plane in truth.labeled_planes.tolist():
            on_plane = (predicted.on_plane(plane) if predicted.is_stack
                        else Annotation(np.zeros((0, 4)), [], np.zeros(0)))
            if on_plane.scores is None:
                on_plane.scores = np.zeros(len(on_plane))
            for values, value in zip(out, (f"{name}[{','.join(map(str, plane))}]", truth.on_plane(plane), on_plane,
                                           size)):
                values.append(value)
    if left_out:
        notes.append(f"{left_out} predicted box(es) on planes nobody labeled were left out (an unlabeled plane "
                     "is not ground truth)")
    return out
