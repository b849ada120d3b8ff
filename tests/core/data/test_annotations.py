import io
import json
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest
import torch

from napari_faster_rcnn.core.data.annotations import (
    Annotation,
    AnnotationError,
    find_annotation_file,
    load_annotation,
    save_annotation,
)
from napari_faster_rcnn.core.data.safe_load import numpy_safe_globals


def torch_save_as_numpy1(path, obj):
    """Write ``obj`` with torch.save, then rename numpy 2's modules to numpy 1.x's.

    numpy 1.x pickles arrays as ``numpy.core.multiarray._reconstruct``; protocol 2
    stores globals as newline-terminated text, so the rename is a byte replace.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in content or b"numpy.core.multiarray" in content
                content = content.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            target.writestr(info, content)
    assert b"numpy._core" not in open(path, "rb").read()


class RunsCode:
    """A pickle payload that would create a marker file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --- reading what others wrote ------------------------------------------------


def test_reads_numpy_1x_pickles_of_string_labels_and_lists_of_arrays(tmp_path):
    path = tmp_path / "old.pt"
    boxes = [np.array([54.2, 18.7, 164.5, 158.6]), np.array([246.1, 20.8, 365.9, 150.2])]
    torch_save_as_numpy1(path, {"labels": np.array(["head", "head"]), "boxes": boxes})
    annotation = load_annotation(path)
    np.testing.assert_array_equal(annotation.boxes, np.stack(boxes))
    assert annotation.labels == ["head", "head"]
    assert annotation.scores is None


def test_reads_numpy_1x_predictions_with_integer_labels_and_scores(tmp_path):
    path = tmp_path / "pred.pt"
    torch_save_as_numpy1(
        path,
        {"labels": np.array([1, 2]), "boxes": [np.array([0.0, 0, 5, 5]), np.array([1.0, 1, 4, 4])], "scores": np.array([0.9, 0.4])},
    )
    annotation = load_annotation(path)
    assert annotation.labels == ["1", "2"]
    np.testing.assert_array_equal(annotation.scores, [0.9, 0.4])


def test_reads_empty_numpy_1x_arrays(tmp_path):
    # An empty array pickles its buffer as bytes() under protocol 2.
    path = tmp_path / "empty.pt"
    torch_save_as_numpy1(path, {"labels": np.array([], dtype=float), "boxes": [], "scores": np.array([])})
    annotation = load_annotation(path)
    assert annotation.boxes.shape == (0, 4) and annotation.labels == [] and len(annotation.scores) == 0


@pytest.mark.parametrize(
    "content",
    [
        {"boxes": torch.tensor([[1.0, 2, 3, 4]]), "labels": torch.tensor([7])},
        {"boxes": np.array([[1.0, 2, 3, 4]], dtype=np.float32), "labels": ["7"]},
        {"boxes": [[1, 2, 3, 4]], "labels": [7]},
        {"boxes": [torch.tensor([1.0, 2, 3, 4])], "labels": np.array([b"7"])},
    ],
    ids=["tensors", "numpy float32", "lists of numbers", "list of tensors and bytes labels"],
)
def test_reads_tensors_arrays_and_lists(tmp_path, content):
    path = tmp_path / "a.pt"
    torch.save(content, path)
    annotation = load_annotation(path)
    np.testing.assert_array_equal(annotation.boxes, [[1, 2, 3, 4]])
    assert annotation.labels == ["7"]


@pytest.mark.parametrize("boxes", [[], np.zeros((0, 4)), torch.zeros((0, 4)), np.array([])])
def test_empty_boxes_mean_no_objects(tmp_path, boxes):
    path = tmp_path / "none.pt"
    torch.save({"boxes": boxes, "labels": []}, path)
    assert len(load_annotation(path)) == 0


def test_reads_json(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"boxes": [[1, 2, 3, 4]], "labels": ["cat"], "scores": [0.5]}))
    annotation = load_annotation(path)
    assert annotation.labels == ["cat"] and annotation.scores.tolist() == [0.5]


# --- refusing what is not an annotation ---------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({"bboxes": [[0, 0, 1, 1]], "labels": ["a"]}, "no 'boxes' key"),
        ({"boxes": [[0, 0, 1, 1]]}, "no 'labels' key"),
        ([1, 2, 3], "expected a dict"),
        ({"boxes": np.zeros((2, 5)), "labels": ["a", "b"]}, r"\(N, 4\)"),
        ({"boxes": np.zeros((2, 4)), "labels": ["a"]}, "2 boxes but 1 labels"),
        ({"boxes": np.zeros((2, 4)), "labels": ["a", "b"], "scores": [0.1]}, "2 boxes but 1 scores"),
        ({"boxes": np.array([[0, 0, np.nan, 1]]), "labels": ["a"]}, "NaN or infinite"),
        ({"boxes": np.array([[0, 0, np.inf, 1]]), "labels": ["a"]}, "NaN or infinite"),
        ({"boxes": np.array([[0, 0, 1, 1]]), "labels": [0.5]}, "class names or integers"),
        ({"boxes": np.array([[0, 0, 1, 1]]), "labels": "a"}, "single string"),
    ],
)
def test_not_an_annotation_names_the_file_and_the_reason(tmp_path, content, reason):
    path = tmp_path / "bad.pt"
    torch.save(content, path)
    with pytest.raises(AnnotationError, match=reason) as info:
        load_annotation(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


def test_malicious_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"boxes": [], "labels": RunsCode(marker)}, path)
    with pytest.raises(AnnotationError, match="refused to load.*(posix|os)\\.system") as info:
        load_annotation(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_malicious_plain_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"boxes": RunsCode(marker)}, protocol=2))
    with pytest.raises(AnnotationError):
        load_annotation(path)
    assert not marker.exists()


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"boxes": np.zeros((0, 4)), "labels": np.array([{"a": 1}], dtype=object)}, path)
    with pytest.raises(AnnotationError, match="refused to load.*ObjectDType"):
        load_annotation(path)


def torch_save_without_dtype_state(path, obj):
    """``torch.save`` of ``obj`` (which holds one object array), edited as a hand-made pickle would be:
    its ``dtype('O')`` is built without its state, which torch refuses (its class is not
    allowlisted), so the arrays load as arrays of Python objects."""
    import pickletools

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename.endswith("data.pkl"):
                operations = list(pickletools.genops(content))
                at = next(k for k, (_, argument, _) in enumerate(operations) if argument == "O8")  # dtype('O8')
                mark = next(p for op, _, p in operations[at:] if op.name == "MARK")
                build = next(p for op, _, p in operations[at:] if op.name == "BUILD")
                content = content[:mark] + content[build + 1:]  # the dtype's state, MARK to BUILD
            target.writestr(info, content)


@pytest.mark.parametrize("key", ["labels", "boxes"])
def test_hand_made_object_arrays_are_refused_naming_the_file(tmp_path, key):
    path = tmp_path / "objects.pt"
    content = {"boxes": np.array([[0, 0, 1, 1]]), "labels": ["a"]}
    content[key] = np.array(content[key], dtype=object)
    torch_save_without_dtype_state(path, content)
    with torch.serialization.safe_globals(numpy_safe_globals()):  # the allowlist alone lets it through
        assert torch.load(path, weights_only=True)[key].dtype == np.dtype(object)
    refused = rf"refused to load: the file holds an array of dtype object at \['{key}'\]"
    with pytest.raises(AnnotationError, match=refused) as info:
        load_annotation(path)
    assert info.value.path == path and str(path) in str(info.value)


def test_a_folder_named_like_an_annotation_file_is_said_to_be_a_folder(tmp_path):
    (tmp_path / "a.pt").mkdir()
    with pytest.raises(AnnotationError, match="a.pt: is a folder, not a file"):
        load_annotation(tmp_path / "a.pt")


# Random bytes are read by torch's legacy (non-zip) loader as a pickle, which fails in
# many different ways; seeds 17, 54 and 62 fail there with IndexError, UnicodeDecodeError and KeyError.
@pytest.mark.parametrize("damage", ["truncated", "empty", *(f"garbage-{seed}" for seed in (0, 17, 54, 62, 76, 111))])
def test_corrupt_files(tmp_path, damage):
    path = tmp_path / "broken.pt"
    save_annotation(path, Annotation([[0, 0, 1, 1]], ["a"]))
    payload = path.read_bytes()
    if damage.startswith("garbage"):
        path.write_bytes(np.random.default_rng(int(damage.split("-")[1])).bytes(300))
    else:
        path.write_bytes({"truncated": payload[: len(payload) // 2], "empty": b""}[damage])
    with pytest.raises(AnnotationError, match="broken.pt: not a readable PyTorch file"):
        load_annotation(path)


@pytest.mark.parametrize("text", ["{not json", '{"boxes": [[0, 0, NaN, 1]], "labels": ["a"]}', "\xff\xfe"])
def test_corrupt_json(tmp_path, text):
    path = tmp_path / "broken.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(AnnotationError, match="broken.json"):
        load_annotation(path)


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(AnnotationError, match="file not found"):
        load_annotation(tmp_path / "missing.pt")
    with pytest.raises(AnnotationError, match="unknown annotation format"):
        load_annotation(tmp_path / "boxes.csv")


# --- writing ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pt", ".json"])
def test_save_and_load_round_trip(tmp_path, suffix):
    annotation = Annotation(
        boxes=[[0.25, 1.5, 10.125, 20.0], [3, 4, 5, 6]],
        labels=["cell", "nucleus"],
        scores=[0.75, 0.5],
        classes=["cell", "nucleus", "debris"],
    )
    path = save_annotation(tmp_path / f"x{suffix}", annotation)
    assert load_annotation(path) == annotation


def test_saved_pt_loads_with_plain_safe_torch_load(tmp_path):
    path = save_annotation(tmp_path / "x.pt", Annotation([[1, 2, 3, 4]], ["cat"], scores=[0.5]))
    content = torch.load(path, weights_only=True)  # no allowlist: only tensors, lists, str
    assert isinstance(content["boxes"], torch.Tensor) and content["labels"] == ["cat"]
    assert isinstance(content["scores"], torch.Tensor)


def test_saving_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "x.pt"
    old = Annotation([[1, 2, 3, 4]], ["old"])
    save_annotation(path, old)

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_annotation(path, Annotation([[5, 6, 7, 8]], ["new"]))
    monkeypatch.undo()
    assert load_annotation(path) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pt"]  # no temporary file left


def test_saving_keeps_the_file_mode(tmp_path):
    path = tmp_path / "x.json"
    save_annotation(path, Annotation())
    os.chmod(path, 0o640)
    save_annotation(path, Annotation([[1, 2, 3, 4]], ["a"]))
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_new_file_gets_the_mode_open_gives_and_the_process_umask_is_left_alone(tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    reference.touch()  # what open() gives a new file under the process umask
    calls = []
    real_umask = os.umask
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real_umask(mask))
    path = save_annotation(tmp_path / "new.pt", Annotation([[1, 2, 3, 4]], ["a"]))
    # setting the umask to read it would, for a moment, give other threads' new files mode 0o666
    assert calls == []
    assert path.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def test_find_annotation_beside_or_in_target(tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "target").mkdir()
    image = tmp_path / "input" / "a.png"
    image.touch()
    assert find_annotation_file(image) is None
    save_annotation(tmp_path / "target" / "a.json", Annotation())
    assert find_annotation_file(image) == tmp_path / "target" / "a.json"
    save_annotation(tmp_path / "input" / "a.pt", Annotation())
    assert find_annotation_file(image) == tmp_path / "input" / "a.pt"


def test_select_keeps_labels_and_scores_aligned():
    annotation = Annotation([[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3]], ["a", "b", "c"], scores=[0.1, 0.2, 0.3])
    kept = annotation.select(annotation.scores > 0.15)
    assert kept.labels == ["b", "c"] and kept.scores.tolist() == [0.2, 0.3]
    assert kept.boxes[:, 2].tolist() == [2, 3]


def test_numpy_pickles_load_from_many_threads_at_once(tmp_path):
    # torch's safe_globals is one process-wide list: without taking turns, a thread leaving it
    # took the allowlist away from another thread's load, and plain files read as refused.
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for index in range(40):
        path = tmp_path / f"{index}.pt"
        torch_save_as_numpy1(path, {"labels": np.array(["head"] * 3), "boxes": [np.array([0.0, 0, 5, 5 + index])] * 3})
        paths.append(path)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, as a busy machine does
    try:
        for _ in range(3):
            with ThreadPoolExecutor(8) as pool:
                annotations = list(pool.map(load_annotation, paths))
            assert [a.boxes[0, 3] for a in annotations] == [5 + i for i in range(40)]
    finally:
        sys.setswitchinterval(interval)
