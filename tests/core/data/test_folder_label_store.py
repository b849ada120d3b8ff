"""FolderLabelStore: a folder's pages (2-D images and stacks' planes), each stack saved to its ONE file."""

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.data.folder_label_store import FolderLabelStore
from napari_faster_rcnn.core.data.labeling import file_stamp


def box(x):
    return Annotation(np.array([[x, x, x + 4.0, x + 4]]), ["cell"])


def make_store(tmp_path):
    """a.png (file with a box), then movie: (2, 2) planes, plane (0, 1) labeled with a box, (1, 0) marked."""
    save_annotation(tmp_path / "a.pt", box(1))
    save_annotation(tmp_path / "movie.pt", Annotation(np.array([[2.0, 2, 6, 6]]), ["cell"], planes=np.array([[0, 1]]),
                                                      labeled_planes=np.array([[0, 1], [1, 0]])))
    files = [tmp_path / "a.pt"] + [tmp_path / "movie.pt"] * 4
    planes = [None, (0, 0), (0, 1), (1, 0), (1, 1)]
    annotations = [box(1), Annotation(), box(2), Annotation(), Annotation()]
    return FolderLabelStore(annotations, files, planes, {str(tmp_path / "movie.pt"): (2, 2)},
                            stamps=[file_stamp(f) for f in files], labeled=[2, 3])


def test_labeled_pages_and_one_write_per_stack(tmp_path):
    store = make_store(tmp_path)
    assert store.unlabeled() == [1, 4]
    store.set(4, box(9))
    assert store.mark([1, 2]) == [1]  # plane (0, 1) was labeled already
    assert store.unlabeled() == []
    before = (tmp_path / "a.pt").read_bytes()
    report = store.save(sorted(store.dirty), lambda paths: True)
    assert [p.name for p in report.written] == ["movie.pt"] and not store.dirty
    assert (tmp_path / "a.pt").read_bytes() == before
    saved = load_annotation(tmp_path / "movie.pt")
    assert saved.planes.tolist() == [[0, 1], [1, 1]]
    assert saved.labeled_planes.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]


def test_a_stack_file_changed_by_another_program_is_asked_once_and_read_again_when_not_edited(tmp_path):
    store = make_store(tmp_path)
    other = Annotation(np.array([[5.0, 5, 9, 9]]), ["cell"], planes=np.array([[1, 1]]), labeled_planes=np.array([[1, 1]]))
    save_annotation(tmp_path / "movie.pt", other)
    store.set(1, box(3))
    asked = []
    report = store.save([1, 2], lambda paths: asked.append(paths) or False)
    assert asked == [[tmp_path / "movie.pt"]] and report.refused == [tmp_path / "movie.pt"] and not report.written
    assert load_annotation(tmp_path / "movie.pt").planes.tolist() == [[1, 1]]  # theirs kept
    store.dirty.clear()
    assert store.reload(3)  # no unsaved plane: their version, every plane of the stack
    assert [len(store.annotations[i]) for i in range(1, 5)] == [0, 0, 0, 1]
    assert store.unlabeled() == [1, 2, 3]
