import pytest

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.data.folders import (
    ANNOTATIONS_ONLY,
    INPUT_TARGET,
    SIDE_BY_SIDE,
    DatasetError,
    annotation_for,
    discover_dataset,
)
from tests.conftest import write_image


def test_input_target_layout(tutorial_dataset):
    dataset = discover_dataset(tutorial_dataset)
    assert dataset.layout == INPUT_TARGET
    assert [s.name for s in dataset.samples] == ["000", "001", "002", "003", "004", "005"]
    assert all(s.annotation == tutorial_dataset / "target" / f"{s.name}.pt" for s in dataset.samples)
    assert dataset.annotation_suffix == ".pt"


def test_side_by_side_layout_with_an_unlabeled_image(side_by_side_dataset):
    dataset = discover_dataset(side_by_side_dataset)
    assert dataset.layout == SIDE_BY_SIDE
    assert [(s.name, s.annotation.name if s.annotation else None) for s in dataset.samples] == [
        ("a", "a.json"),
        ("b", "b.json"),
        ("c", None),
    ]
    # A new annotation for the unlabeled image follows the folder's format.
    assert dataset.annotation_path(dataset.samples[2]) == side_by_side_dataset / "c.json"


def test_input_without_target_saves_into_target(tmp_path):
    write_image(tmp_path / "input" / "x.png")
    dataset = discover_dataset(tmp_path)
    assert dataset.samples[0].annotation is None
    assert dataset.annotation_path(dataset.samples[0]) == tmp_path / "target" / "x.pt"


def test_orphans_and_duplicate_names_are_reported(tmp_path):
    write_image(tmp_path / "input" / "a.png")
    write_image(tmp_path / "input" / "a.jpg")
    save_annotation(tmp_path / "target" / "zzz.pt", Annotation())
    dataset = discover_dataset(tmp_path)
    reasons = {path.name: reason for path, reason in dataset.skipped}
    assert "same name" in reasons["a.png"]
    assert reasons["zzz.pt"] == "no image with this name"


def test_annotation_folder_finds_its_images_in_the_best_matching_sibling(tmp_path):
    for name in ["0", "1", "2", "3"]:
        write_image(tmp_path / "input" / f"{name}.png")
    for name in ["0", "1"]:
        write_image(tmp_path / "test" / f"{name}.png")
        save_annotation(tmp_path / "predictions" / f"{name}.pt", Annotation(scores=[]))
    dataset = discover_dataset(tmp_path / "predictions")
    assert dataset.layout == ANNOTATIONS_ONLY
    assert dataset.image_folder == tmp_path / "test"  # exact match beats a superset
    assert [s.image.parent.name for s in dataset.samples] == ["test", "test"]


@pytest.mark.parametrize("content", [None, "notes.txt"])
def test_not_a_dataset(tmp_path, content):
    if content:
        (tmp_path / content).write_text("hello")
    with pytest.raises(DatasetError, match="no images"):
        discover_dataset(tmp_path)
    with pytest.raises(DatasetError, match="not a folder"):
        discover_dataset(tmp_path / "missing")


def test_annotation_for_finds_an_images_file_where_the_folder_rules_look(tutorial_dataset, side_by_side_dataset,
                                                                       monkeypatch):
    import napari_faster_rcnn.core.data.folders as folders

    cache = {}
    assert annotation_for(tutorial_dataset / "input" / "003.png", cache) == tutorial_dataset / "target" / "003.pt"
    assert annotation_for(side_by_side_dataset / "a.png", cache).name == "a.json"
    assert annotation_for(side_by_side_dataset / "c.png", cache) is None
    (tutorial_dataset / "target" / "004.pt").unlink()
    calls = []
    monkeypatch.setattr(folders, "discover_dataset", lambda root: calls.append(root))
    # each folder is discovered once: the cache answers (004's file, removed since, is still in it)
    assert annotation_for(tutorial_dataset / "input" / "004.png", cache) == tutorial_dataset / "target" / "004.pt"
    assert calls == []
    monkeypatch.undo()
    assert annotation_for(tutorial_dataset / "input" / "004.png", {}) is None  # a new cache looks again
