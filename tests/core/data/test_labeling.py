"""The labeling store: counts kept current, unsaved images, and files another program changed."""

import os

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.data.labeling import LabelStore, check_class_name, file_stamp


def make_store(tmp_path, with_files=True):
    annotations = [
        Annotation([[0, 0, 5, 5], [1, 1, 8, 8]], ["cat", "dog"]),
        Annotation(),
        Annotation([[2, 2, 9, 9]], ["cat"]),
    ]
    files = [tmp_path / f"{i:03d}.pt" for i in range(3)]
    if with_files:
        for path, annotation in zip(files, annotations):
            if len(annotation):
                save_annotation(path, annotation)
    return LabelStore(annotations, files, classes=["cat", "dog"]), files


def never(paths):
    raise AssertionError(f"asked about {paths} although nothing changed on disk")


def test_counts_and_unlabeled_follow_each_edit(tmp_path):
    store, _ = make_store(tmp_path)
    assert store.totals == {"cat": 2, "dog": 1} and store.unlabeled() == [1]
    store.set(1, Annotation([[0, 0, 1, 1]] * 3, ["dog", "dog", "bird"]))
    store.set(0, Annotation())
    assert +store.totals == {"cat": 1, "dog": 2, "bird": 1}
    assert store.unlabeled() == [0] and store.dirty == {0, 1}
    assert store.classes == ["cat", "dog", "bird"]  # a label not in the list joins it
    assert store.next_unlabeled(0) == 0  # wraps around to the only one
    store.set(2, Annotation())
    assert store.next_unlabeled(0) == 2 and store.next_unlabeled(2) == 0


def test_replacing_an_annotation_behind_the_store_is_taken_in_by_sync(tmp_path):
    store, _ = make_store(tmp_path)
    store.annotations[1] = Annotation([[0, 0, 3, 3]], ["cat"])  # as code editing model.annotations[i] does
    assert store.sync() == [1]
    assert store.totals["cat"] == 3 and 1 in store.dirty and store.unlabeled() == []


def test_save_writes_the_unsaved_images_with_the_class_list(tmp_path):
    store, files = make_store(tmp_path)
    untouched = files[2].stat().st_mtime_ns, files[2].stat().st_ino
    store.set(1, Annotation([[1, 2, 3, 4]], ["dog"]))
    report = store.save_unsaved(never)
    assert report.written == [files[1]] and not store.dirty
    saved = load_annotation(files[1])
    np.testing.assert_allclose(saved.boxes, [[1, 2, 3, 4]])
    assert saved.labels == ["dog"] and saved.classes == ["cat", "dog"]
    assert (files[2].stat().st_mtime_ns, files[2].stat().st_ino) == untouched  # not rewritten
    assert store.stamps[1] == file_stamp(files[1])


@pytest.mark.parametrize("answer", [False, True])
def test_a_file_changed_by_another_program_is_overwritten_only_when_confirmed(tmp_path, answer):
    store, files = make_store(tmp_path)
    theirs = Annotation([[10, 10, 20, 20]], ["fox"])
    save_annotation(files[0], theirs)  # another program, after the store read the file
    store.set(0, Annotation([[0, 0, 2, 2]], ["cat"]))
    store.set(2, Annotation([[0, 0, 3, 3]], ["dog"]))
    asked = []
    report = store.save_unsaved(lambda paths: asked.append(paths) or answer)
    assert asked == [[files[0]]]  # asked once, about that file only
    assert files[2] in report.written
    if answer:
        assert load_annotation(files[0]).labels == ["cat"] and not store.dirty
    else:
        assert load_annotation(files[0]) == theirs
        assert report.refused == [files[0]] and store.dirty == {0}  # our edit is kept, unsaved
        assert store.save_unsaved(lambda paths: False).refused == [files[0]]  # and asked again next time


def test_a_deleted_or_new_file_counts_as_changed(tmp_path):
    store, files = make_store(tmp_path)
    os.unlink(files[0])
    save_annotation(files[1], Annotation([[0, 0, 1, 1]], ["owl"]))  # image 1 had no file when read
    assert store.changed_on_disk(0) and store.changed_on_disk(1) and not store.changed_on_disk(2)


def test_write_to_reads_again_what_another_program_changed_and_exports_elsewhere(tmp_path):
    store, files = make_store(tmp_path)
    theirs = Annotation([[10, 10, 20, 20]], ["fox"], classes=["fox"])
    save_annotation(files[2], theirs)  # no edits here: their version wins
    store.set(0, Annotation([[0, 0, 2, 2]], ["dog"]))
    report = store.write_to(files, never)
    assert report.reloaded == [2] and store.annotations[2].labels == ["fox"]
    assert load_annotation(files[2]).labels == ["fox"] and files[2] not in report.written
    assert sorted(report.written) == [files[0], files[1]]  # every other image gets a file
    assert load_annotation(files[1]) == Annotation(classes=["cat", "dog", "fox"])
    exported = [tmp_path / "out" / f"{i}.json" for i in range(3)]
    assert store.write_to(exported, never).written == exported
    assert load_annotation(exported[2]).labels == ["fox"]


def test_class_changes_rename_and_remove_boxes_everywhere(tmp_path):
    store, files = make_store(tmp_path)
    store.rename_class("cat", "lynx")
    assert [a.labels for a in store.annotations] == [["lynx", "dog"], [], ["lynx"]]
    assert store.classes == ["lynx", "dog"] and +store.totals == {"lynx": 2, "dog": 1}
    assert store.dirty == {0, 2}  # the files that exist carry the class list; image 1 has none
    assert store.remove_class("lynx") == 2
    assert store.classes == ["dog"] and store.unlabeled() == [1, 2]
    store.save_unsaved(never)
    assert load_annotation(files[0]) == Annotation([[1, 1, 8, 8]], ["dog"], classes=["dog"])
    assert load_annotation(files[2]) == Annotation(classes=["dog"])
    assert not files[1].exists()


def test_class_names_are_checked():
    assert check_class_name("  owl ", ["cat"]) == "owl"
    for bad, reason in [("", "needs a name"), ("cat", "already"), ("3", "class number")]:
        with pytest.raises(ValueError, match=reason):
            check_class_name(bad, ["cat"])
