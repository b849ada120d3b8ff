"""A stack's boxes one plane at a time, saved to one file (StackLabelStore, issue 13)."""

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.data.stack_label_store import StackLabelStore
from napari_faster_rcnn.core.data.stack_planes import index_plane, join_planes, plane_index, split_planes


def stack_annotation(shape, count, seed=0):
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 50, (count, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(2, 9, (count, 2))], axis=1)
    planes = np.stack([rng.integers(0, side, count) for side in shape], axis=1)
    labels = [str(v) for v in rng.choice(["cell", "debris"], count)]
    return Annotation(boxes, labels, classes=["cell", "debris"], planes=planes,
                      labeled_planes=np.array([[side - 1 for side in shape]]))


def test_split_planes_gives_each_plane_its_boxes_and_join_gives_them_back():
    shape = (3, 4)
    annotation = stack_annotation(shape, 60)
    per_plane = split_planes(annotation, shape)
    assert len(per_plane) == 12
    for index, plane in enumerate(per_plane):
        reference = annotation.on_plane(index_plane(index, shape))  # a filter per plane, as brute force
        assert plane.labels == reference.labels and np.array_equal(plane.boxes, reference.boxes)
        assert plane_index(index_plane(index, shape), shape) == index
    joined = join_planes(per_plane, shape, [plane_index(p, shape) for p in annotation.labeled_planes], annotation.classes)
    order = np.lexsort(annotation.planes.T[::-1])  # (the joined boxes come plane by plane)
    assert np.array_equal(joined.planes, annotation.planes[order])
    assert np.array_equal(joined.boxes, annotation.boxes[order])
    assert joined.labels == [annotation.labels[i] for i in order]
    assert np.array_equal(joined.labeled_planes, annotation.labeled_planes)


def test_a_plane_is_labeled_once_it_had_a_box_or_was_marked_and_one_file_is_written(tmp_path):
    path = tmp_path / "movie.pt"
    annotation = Annotation(np.array([[1.0, 1, 5, 5]]), ["cell"], planes=np.array([[2]]), labeled_planes=np.array([[4]]))
    save_annotation(path, annotation)
    store = StackLabelStore(load_annotation(path), path, (6,))
    assert store.labeled() == [2, 4] and sorted(store.empty) == [0, 1, 3, 5]
    store.set(0, Annotation(np.array([[0.0, 0, 3, 3]]), ["cell"]))
    store.set(0, Annotation())  # its box deleted: the plane stays labeled
    assert store.mark([5]) == [5] and store.mark([5]) == []
    assert store.labeled() == [0, 2, 4, 5] and store.dirty == {0, 5}
    report = store.save(sorted(store.dirty), lambda paths: True)
    assert report.written == [path] and not store.dirty
    saved = load_annotation(path)
    assert saved.planes.tolist() == [[2]] and saved.labeled_planes.tolist() == [[0], [2], [4], [5]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.pt"]


def test_a_file_changed_on_disk_is_read_again_only_without_edits_and_not_overwritten_unasked(tmp_path):
    path = tmp_path / "movie.json"
    save_annotation(path, Annotation(planes=np.zeros((0, 1)), labeled_planes=np.array([[1]])))
    store = StackLabelStore(load_annotation(path), path, (3,))
    theirs = Annotation(np.array([[1.0, 1, 4, 4]]), ["x"], planes=np.array([[2]]), labeled_planes=np.zeros((0, 1)))
    save_annotation(path, theirs)
    store.stamps = [(0, 0, 0)] * 3  # (a stamp another program's write would not match)
    assert store.changed_on_disk(1) and store.reload(1)
    assert len(store.annotations[2]) == 1 and store.labeled() == [2]
    store.mark([0])
    store.stamps = [(0, 0, 0)] * 3
    assert not store.reload(0)  # unsaved marks here: theirs is not taken
    report = store.save([0], lambda paths: False)
    assert report.refused == [path] and load_annotation(path).labeled_planes.tolist() == [[2]]
