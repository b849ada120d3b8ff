"""Predicting stacks: every plane or a range, records carrying planes, one file per stack."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tifffile

from napari_faster_rcnn.core.data.annotations import load_annotation, save_annotation
from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from napari_faster_rcnn.core.prediction.folders import predict_folder
from napari_faster_rcnn.core.prediction.run import predict_images
from napari_faster_rcnn.core.prediction.stacks import join_planes, parse_planes, select_planes, stack_items
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds
from tests.checkpoint_data import assert_same_detections, tiny_checkpoint


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load_checkpoint(tiny_checkpoint(tmp_path_factory))


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Five different 64 x 64 gray frames (synthetic shapes)."""
    dataset = write_synthetic_dataset(tmp_path_factory.mktemp("frames") / "shapes", 5, seed=4, height=64, width=64)
    return np.stack([read_image(path)[:, :, 0] for path in sorted((dataset / "input").glob("*.png"))])


@pytest.mark.parametrize(("text", "count", "expected"), [
    ("5", 10, [5]), ("3:7", 10, [3, 4, 5, 6]), ("8:", 10, [8, 9]), (":2", 10, [0, 1]),
    ("0,4:6", 10, [0, 4, 5]), ("7:20", 9, [7, 8]), ("12", 10, []), ("2:4,3", 10, [2, 3]),
])
def test_a_planes_text_chooses_as_a_python_slice_of_the_first_dimension(text, count, expected):
    assert select_planes((count,), text) == [(p,) for p in expected]
    # brute force over every plane of a (count, 2) stack: the first coordinate decides
    wanted = set()
    for part in text.split(","):
        wanted |= set(eval(f"list(range({count}))[{part}]") if ":" in part else  # noqa: S307 - test reference
                      ([int(part)] if int(part) < count else []))
    assert set(select_planes((count, 2), text)) == {p for p in itertools.product(range(count), range(2))
                                                    if p[0] in wanted}


@pytest.mark.parametrize("text", ["3-7", "a", "7:3", "-1", "", "1:2:3"])
def test_a_bad_planes_text_is_refused_naming_it(text):
    with pytest.raises(ValueError, match="planes"):
        parse_planes(text)


def test_every_plane_predicted_as_its_own_image_with_its_plane(loaded, frames, tmp_path):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, frames, photometric="minisblack")
    records, summary = predict_images(loaded.model, stack_items(path), loaded.classes, batch_size=2)
    reference, _ = predict_images(loaded.model, list(frames), loaded.classes, batch_size=2)  # the planes as arrays
    assert [record.plane for record in records] == [(t,) for t in range(5)]
    assert summary.images == 5 and all(record.source == path for record in records)
    for record, expected in zip(records, reference):
        assert record.annotation.planes.tolist() == [[record.plane[0]]] * len(record.annotation)
        assert_same_detections(record.annotation, expected.annotation)
    some, _ = predict_images(loaded.model, stack_items(path, planes="1:3"), loaded.classes)
    assert [record.plane for record in some] == [(1,), (2,)]


def test_a_folder_of_a_stack_and_2d_images_writes_one_file_per_stack_without_labeled_planes(loaded, frames, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    movie = frames[:, None].repeat(2, axis=1)  # (time 5, z 2, 64, 64)
    movie[:, 1] = 255 - movie[:, 1]
    tifffile.imwrite(folder / "movie.tif", movie, metadata={"axes": "TZYX"})
    tifffile.imwrite(folder / "still.tif", frames[0])
    out = tmp_path / "out"
    seen = []
    thresholds = Thresholds(0.2, 0.5)
    result = predict_folder(loaded, folder, out, thresholds=thresholds, device="cpu", planes="1:3",
                            progress=seen.append, suffix=".json")
    assert sorted(path.name for path in out.iterdir()) == ["movie.json", "still.json", "thresholds.json"]
    assert result.stacks == 1 and result.planes == 4
    assert [record.plane for record in seen] == [(1, 0), (1, 1), (2, 0), (2, 1), None]  # progress per plane
    assert seen[-1].done == seen[-1].total == 5
    import json

    raw = json.loads((out / "movie.json").read_text())
    assert "labeled_planes" not in raw and set(raw) >= {"boxes", "labels", "scores", "planes"}
    stack = load_annotation(out / "movie.json")
    assert not (set(map(tuple, stack.planes.tolist())) - {(1, 0), (1, 1), (2, 0), (2, 1)})
    # each plane's boxes are what the plane alone, as an array, gives under the same thresholds
    for t, z in [(1, 0), (1, 1), (2, 0), (2, 1)]:
        [alone], _ = predict_images(loaded.model, [movie[t, z]], loaded.classes)
        assert_same_detections(stack.on_plane((t, z)), apply_thresholds(alone.annotation, thresholds))
    assert load_annotation(out / "still.json").planes is None  # a 2-D image's file is unchanged


def test_a_stack_without_a_chosen_plane_is_skipped_with_its_reason(loaded, frames, tmp_path):
    folder = tmp_path / "short"
    folder.mkdir()
    tifffile.imwrite(folder / "short.tif", frames[:2], photometric="minisblack")
    tifffile.imwrite(folder / "long.tif", frames, photometric="minisblack")
    result = predict_folder(loaded, folder, tmp_path / "out", device="cpu", planes="3:")
    assert [path.name for path in result.written] == ["long.pt"]
    assert any("short.tif" in path and "no plane 3:" in reason for path, reason in result.skipped)
    assert sorted(set(map(tuple, load_annotation(result.written[0]).planes.tolist()))) <= [(3,), (4,)]


def test_joined_planes_round_trip_and_saving_without_labeled_planes(tmp_path):
    one = apply_thresholds(_annotation([[1, 2, 10, 12]], [0.9]), Thresholds(0.0, 1.0))
    two = _annotation([[3, 3, 8, 9], [20, 20, 30, 30]], [0.4, 0.8])
    joined = join_planes([one, two], [(2, 1), (4, 0)])
    assert joined.planes.tolist() == [[2, 1], [4, 0], [4, 0]]
    assert joined.on_plane((4, 0)).boxes.tolist() == two.boxes.tolist()
    path = save_annotation(tmp_path / "p.pt", joined, labeled_planes=False)
    import torch

    assert "labeled_planes" not in torch.load(path, weights_only=True)
    assert load_annotation(path).planes.tolist() == joined.planes.tolist()


def _annotation(boxes, scores):
    from napari_faster_rcnn.core.data.annotations import Annotation

    return Annotation(np.asarray(boxes, float), ["circle"] * len(boxes), np.asarray(scores, float))


def test_a_plane_read_is_the_files_plane_even_after_the_file_changed(tmp_path):
    path = tmp_path / "movie.tif"
    first = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    tifffile.imwrite(path, first, photometric="minisblack")
    items = stack_items(path)
    assert [item.read()[:, :, 0].tolist() for item in items] == [plane.tolist() for plane in first]
    tifffile.imwrite(path, first[:, ::-1] + 7, photometric="minisblack")  # the stack kept open is stale now
    assert stack_items(path)[1].read()[:, :, 0].tolist() == (first[1, ::-1] + 7).tolist()
