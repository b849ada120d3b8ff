"""Evaluation of stacks pairs only the planes a person labeled (issue 13)."""

import numpy as np
import pytest
import tifffile

from napari_faster_rcnn.core.data.annotations import Annotation, AnnotationError, save_annotation
from napari_faster_rcnn.core.evaluation.metrics import evaluate
from napari_faster_rcnn.core.evaluation.pairing import load_evaluation_folders


def test_predictions_on_unlabeled_planes_are_not_false_positives(tmp_path):
    truth, predicted = tmp_path / "truth", tmp_path / "predicted"
    truth.mkdir()
    predicted.mkdir()
    tifffile.imwrite(truth / "movie.tif", np.zeros((10, 32, 32), np.uint16))
    box = [2.0, 2.0, 12.0, 12.0]
    save_annotation(truth / "movie.pt", Annotation(boxes=[box], labels=["cell"], planes=[[3]],
                                                   labeled_planes=[[3], [7]]))
    # a perfect box on plane 3, and confident boxes on planes 5 and 9 that nobody labeled
    save_annotation(predicted / "movie.pt", Annotation(
        boxes=[box, box, box], labels=["cell"] * 3, scores=[0.5, 0.9, 0.9], planes=[[3], [5], [9]]))
    folders = load_evaluation_folders(truth, predicted)
    assert folders.names == ["movie[3]", "movie[7]"]
    assert [len(a) for a in folders.ground_truths] == [1, 0]
    assert [len(a) for a in folders.predictions] == [1, 0]
    assert any("planes nobody labeled" in note for note in folders.notes)
    result = evaluate(folders.ground_truths, folders.predictions, classes=["cell"], names=folders.names)
    assert result.voc.map == pytest.approx(1.0)


def test_a_false_positive_on_a_labeled_empty_plane_counts(tmp_path):
    truth, predicted = tmp_path / "truth", tmp_path / "predicted"
    truth.mkdir()
    predicted.mkdir()
    box = [2.0, 2.0, 12.0, 12.0]
    save_annotation(truth / "movie.json", Annotation(boxes=[box], labels=["cell"], planes=[[3]],
                                                     labeled_planes=[[3], [7]]))
    save_annotation(predicted / "movie.json", Annotation(
        boxes=[box, box], labels=["cell"] * 2, scores=[0.5, 0.9], planes=[[3], [7]]))
    folders = load_evaluation_folders(truth, predicted)
    result = evaluate(folders.ground_truths, folders.predictions, classes=["cell"], names=folders.names)
    assert result.voc.map == pytest.approx(0.5)  # the first-ranked detection is a false positive


def test_predictions_without_planes_for_a_stack_name_the_file(tmp_path):
    truth, predicted = tmp_path / "truth", tmp_path / "predicted"
    truth.mkdir()
    predicted.mkdir()
    save_annotation(truth / "movie.pt", Annotation(boxes=[[0, 0, 4, 4]], labels=["a"], planes=[[1]]))
    save_annotation(predicted / "movie.pt", Annotation(boxes=[[0, 0, 4, 4]], labels=["a"], scores=[1.0]))
    with pytest.raises(AnnotationError, match="movie.pt.*without 'planes'"):
        load_evaluation_folders(truth, predicted)
