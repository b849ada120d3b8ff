"""Reading datasets as CVAT, Label Studio and Roboflow write them (small hand-made examples),
and malformed files, which are refused with an error naming the file."""

import json
import time

import numpy as np
import pytest

from napari_faster_rcnn.core.formats import FormatError, detect_format, read_dataset
from tests.core.formats.test_formats import blank_image


def items_by_name(dataset):
    return {item.name: item for item in dataset.items}


# --- COCO -----------------------------------------------------------------------


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_coco_as_cvat_exports_it(tmp_path):
    """annotations/instances_default.json + images/; category ids with gaps; crowd; an empty image."""
    blank_image(tmp_path / "images" / "frame_000000.jpg", 100, 200)
    blank_image(tmp_path / "images" / "frame_000001.jpg", 100, 200)
    write_json(tmp_path / "annotations" / "instances_default.json", {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""},
        "categories": [{"id": 7, "name": "dog", "supercategory": ""}, {"id": 3, "name": "cat", "supercategory": ""}],
        "images": [
            {"id": 1, "width": 200, "height": 100, "file_name": "frame_000000.jpg", "license": 0},
            {"id": 2, "width": 200, "height": 100, "file_name": "frame_000001.jpg", "license": 0},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "segmentation": [], "area": 200.0,
             "bbox": [10.5, 20.0, 20.0, 10.0], "iscrowd": 0, "attributes": {"occluded": False}},
            {"id": 2, "image_id": 1, "category_id": 3, "segmentation": {"counts": [0, 5], "size": [100, 200]},
             "area": 50.0, "bbox": [0, 0, 5, 10], "iscrowd": 1},
        ],
    })
    assert detect_format(tmp_path) == "coco"
    dataset = read_dataset(tmp_path)
    assert dataset.classes == ["cat", "dog"]  # in category id order: 3, 7
    items = items_by_name(dataset)
    first = items["frame_000000.jpg"]
    assert first.image == tmp_path / "images" / "frame_000000.jpg" and first.size == (100, 200)
    np.testing.assert_array_equal(first.annotation.boxes, [[10.5, 20, 30.5, 30], [0, 0, 5, 10]])
    assert first.annotation.labels == ["dog", "cat"] and first.annotation.scores is None
    assert len(items["frame_000001.jpg"].annotation) == 0
    assert dataset.notes == ["1 crowd boxes (iscrowd = 1) were read as ordinary boxes"]


def test_coco_as_roboflow_exports_it(tmp_path):
    """Split folders with _annotations.coco.json beside the images, and the project's umbrella category."""
    categories = [{"id": 0, "name": "cells", "supercategory": "none"},
                  {"id": 1, "name": "RBC", "supercategory": "cells"},
                  {"id": 2, "name": "WBC", "supercategory": "cells"}]
    for split, name in [("train", "a_jpg.rf.1.jpg"), ("valid", "b_jpg.rf.2.jpg")]:
        blank_image(tmp_path / split / name, 64, 64)
        write_json(tmp_path / split / "_annotations.coco.json", {
            "categories": categories,
            "images": [{"id": 0, "file_name": name, "height": 64, "width": 64}],
            "annotations": [{"id": 0, "image_id": 0, "category_id": 2 if split == "train" else 1,
                             "bbox": [1, 2, 3, 4], "area": 12, "segmentation": [], "iscrowd": 0}],
        })
    (tmp_path / "README.roboflow.txt").write_text("exported from roboflow")
    assert detect_format(tmp_path) == "coco"
    dataset = read_dataset(tmp_path)
    assert dataset.classes == ["RBC", "WBC"]
    items = items_by_name(dataset)
    assert items["a_jpg.rf.1.jpg"].annotation.labels == ["WBC"]
    assert items["b_jpg.rf.2.jpg"].image == tmp_path / "valid" / "b_jpg.rf.2.jpg"


def test_coco_as_label_studio_exports_it(tmp_path):
    """result.json with file names relative to it (images/...), sizes only in the JSON."""
    blank_image(tmp_path / "images" / "0f1e-photo.png", 30, 40)
    write_json(tmp_path / "result.json", {
        "images": [{"width": 40, "height": 30, "id": 0, "file_name": "images/0f1e-photo.png"},
                   {"width": 40, "height": 30, "id": 1, "file_name": "images/not-downloaded.png"}],
        "categories": [{"id": 0, "name": "Airplane"}, {"id": 1, "name": "Car"}],
        "annotations": [{"id": 0, "image_id": 0, "category_id": 1, "segmentation": [],
                         "bbox": [4.1, 5.2, 10.3, 8.4], "ignore": 0, "iscrowd": 0, "area": 86.52}],
        "info": {"year": 2024, "version": "1.0", "contributor": "Label Studio"},
    })
    dataset = read_dataset(tmp_path)
    assert dataset.classes == ["Airplane", "Car"]
    items = items_by_name(dataset)
    assert items["0f1e-photo.png"].image == tmp_path / "images" / "0f1e-photo.png"
    np.testing.assert_allclose(items["0f1e-photo.png"].annotation.boxes, [[4.1, 5.2, 14.4, 13.6]])
    missing = items["not-downloaded.png"]
    assert missing.image is None and missing.size == (30, 40)


def test_coco_results_with_scores(tmp_path):
    write_json(tmp_path / "annotations.json", {
        "images": [{"id": 5, "file_name": "p.jpg", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [{"id": 1, "image_id": 5, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.75},
                        {"id": 2, "image_id": 5, "category_id": 1, "bbox": [1, 1, 2, 2], "score": 0.5}],
    })
    annotation = read_dataset(tmp_path).items[0].annotation
    np.testing.assert_array_equal(annotation.scores, [0.75, 0.5])


def test_coco_bad_annotations_are_skipped_with_the_reason(tmp_path):
    path = tmp_path / "annotations.json"
    write_json(path, {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 9, "bbox": [0, 0, 2, 2]},
                        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, -2, 2]},
                        {"id": 3, "image_id": 4, "category_id": 1, "bbox": [0, 0, 2, 2]},
                        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [0, 0]},
                        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}],
    })
    dataset = read_dataset(tmp_path)
    assert len(dataset.items[0].annotation) == 1
    reasons = [reason for skipped_path, reason in dataset.skipped if skipped_path == path]
    assert reasons[0] == "annotation 1: category_id 9 is not in 'categories'"
    assert reasons[1].startswith("annotation 2: bbox [0, 0, -2, 2] is not [x, y, width, height]")
    assert reasons[2] == "annotation 3: image_id 4 is not in 'images'"
    assert reasons[3].startswith("annotation 4: needs 'image_id', 'category_id' and a 4-number 'bbox'")


def test_malformed_coco_names_the_file(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [')
    with pytest.raises(FormatError, match=r"annotations\.json: not valid JSON"):
        read_dataset(tmp_path, "coco")
    write_json(path, {"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [{"id": 1}]})
    with pytest.raises(FormatError, match=r"annotations\.json: category 0: needs an 'id' and a 'name'"):
        read_dataset(tmp_path)


# --- Pascal VOC -----------------------------------------------------------------

CVAT_VOC = """<?xml version="1.0" encoding="utf-8"?>
<annotation>
  <folder></folder>
  <filename>2008_000008.jpg</filename>
  <source><database>Unknown</database><annotation>Unknown</annotation><image>Unknown</image></source>
  <size><width>500</width><height>442</height><depth></depth></size>
  <segmented>0</segmented>
  <object>
    <name>horse</name><truncated>0</truncated><occluded>0</occluded><difficult>1</difficult>
    <bndbox><xmin>53.5</xmin><ymin>87</ymin><xmax>471.25</xmax><ymax>420</ymax></bndbox>
    <attributes><attribute><name>rotation</name><value>0.0</value></attribute></attributes>
  </object>
  <object>
    <name>person</name><pose>Unspecified</pose><truncated>1</truncated><difficult>0</difficult>
    <bndbox><xmin>158</xmin><ymin>44</ymin><xmax>289</xmax><ymax>167</ymax></bndbox>
    <part><name>head</name><bndbox><xmin>170</xmin><ymin>50</ymin><xmax>200</xmax><ymax>80</ymax></bndbox></part>
  </object>
</annotation>
"""


def test_voc_as_cvat_exports_it(tmp_path):
    """Annotations/ + JPEGImages/ + labelmap.txt; difficult, truncated, parts, fractional values."""
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "2008_000008.xml").write_text(CVAT_VOC)
    (tmp_path / "Annotations" / "2008_000009.xml").write_text(
        "<annotation><filename>2008_000009.jpg</filename><size><width>20</width><height>10</height></size>"
        "</annotation>")
    blank_image(tmp_path / "JPEGImages" / "2008_000008.jpg", 442, 500)
    blank_image(tmp_path / "JPEGImages" / "2008_000009.jpg", 10, 20)
    (tmp_path / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                           "person:192,128,128:head:\nhorse:128,0,128::\n")
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "default.txt").write_text("2008_000008\n2008_000009\n")
    assert detect_format(tmp_path) == "voc"
    dataset = read_dataset(tmp_path)
    assert dataset.classes == ["person", "horse"]
    items = items_by_name(dataset)
    first = items["2008_000008.jpg"]
    assert first.image == tmp_path / "JPEGImages" / "2008_000008.jpg" and first.size == (442, 500)
    np.testing.assert_array_equal(first.annotation.boxes, [[52.5, 86, 471.25, 420], [157, 43, 289, 167]])
    assert first.annotation.labels == ["horse", "person"]  # the part (head) is no box of its own
    assert len(items["2008_000009.jpg"].annotation) == 0
    assert dataset.notes == ["1 boxes marked difficult were read as ordinary boxes"]


def test_voc_beside_the_images_as_labelimg_and_roboflow_write_it(tmp_path):
    for split in ("train", "valid"):
        blank_image(tmp_path / split / f"{split}_1.jpg", 30, 30)
        (tmp_path / split / f"{split}_1.xml").write_text(
            f"<annotation><folder>{split}</folder><filename>{split}_1.jpg</filename>"
            f"<path>C:\\Users\\me\\{split}_1.jpg</path><size><width>30</width><height>30</height><depth>3</depth>"
            f"</size><object><name>{split}-thing</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>30</xmax>"
            "<ymax>30</ymax></bndbox></object></annotation>")
    blank_image(tmp_path / "train" / "unlabeled.jpg", 30, 30)
    assert detect_format(tmp_path) == "voc"
    dataset = read_dataset(tmp_path)
    items = items_by_name(dataset)
    np.testing.assert_array_equal(items["train_1.jpg"].annotation.boxes, [[0, 0, 30, 30]])  # the whole image
    assert items["valid_1.jpg"].annotation.labels == ["valid-thing"]
    assert len(items["unlabeled.jpg"].annotation) == 0
    assert dataset.classes == ["train-thing", "valid-thing"]


def test_malformed_voc_files_are_skipped_with_the_file_named(tmp_path):
    folder = tmp_path / "Annotations"
    folder.mkdir()
    (folder / "good.xml").write_text("<annotation><object><name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
                                     "<xmax>4</xmax><ymax>4</ymax></bndbox></object></annotation>")
    (folder / "broken.xml").write_text("<annotation><object><name>a</name>")
    (folder / "nobox.xml").write_text("<annotation><object><name>a</name></object></annotation>")
    (folder / "words.xml").write_text("<annotation><object><name>a</name><bndbox><xmin>one</xmin></bndbox>"
                                      "</object></annotation>")
    (folder / "size.xml").write_text("<annotation><size><width>1e999</width><height>5</height></size></annotation>")
    (folder / "inverted.xml").write_text("<annotation><object><name>a</name><bndbox><xmin>9</xmin><ymin>1</ymin>"
                                         "<xmax>4</xmax><ymax>4</ymax></bndbox></object></annotation>")
    dataset = read_dataset(tmp_path, "voc")
    assert [item.name for item in dataset.items] == ["good"]
    reasons = {path.name: reason for path, reason in dataset.skipped}
    assert reasons["broken.xml"].startswith("not valid XML")
    assert reasons["nobox.xml"] == "object 1 needs a <name> and a <bndbox>"
    assert reasons["words.xml"] == "object 1: <bndbox> needs numbers xmin, ymin, xmax, ymax"
    assert "not xyxy" in reasons["inverted.xml"]
    assert reasons["size.xml"] == "<size> is not a number of pixels: width '1e999', height '5'"


def test_voc_refuses_entity_tricks(tmp_path):
    folder = tmp_path / "Annotations"
    folder.mkdir()
    laughs = "".join(f'<!ENTITY l{k} "{f"&l{k - 1};" * 10}">' for k in range(1, 10))
    (folder / "bomb.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE annotation [<!ENTITY l0 "lol">{laughs}]>'
        "<annotation><object><name>&l9;</name></object></annotation>")
    (folder / "external.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE annotation [<!ENTITY secret SYSTEM "file://{tmp_path}/secret.txt">]>'
        "<annotation><filename>&secret;</filename></annotation>")
    (tmp_path / "secret.txt").write_text("password")
    start = time.perf_counter()
    dataset = read_dataset(tmp_path, "voc")
    assert time.perf_counter() - start < 5
    assert dataset.items == []
    assert {path.name: reason for path, reason in dataset.skipped} == {
        name: "has a document type declaration (<!DOCTYPE>), which is refused for safety"
        for name in ("bomb.xml", "external.xml")}


# --- YOLO -----------------------------------------------------------------------


def test_yolo_as_roboflow_exports_it(tmp_path):
    """train/valid/test split folders, data.yaml with dict-form names, an empty label file."""
    (tmp_path / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 2\n"
        "names:\n  0: helmet\n  1: head\n\nroboflow:\n  workspace: me\n  version: 3\n")
    blank_image(tmp_path / "train" / "images" / "a.jpg", 100, 200)
    (tmp_path / "train" / "labels").mkdir(parents=True)
    (tmp_path / "train" / "labels" / "a.txt").write_text("1 0.5 0.5 0.1 0.2\n0 0.25 0.75 0.5 0.5\n")
    blank_image(tmp_path / "valid" / "images" / "b.jpg", 10, 10)
    (tmp_path / "valid" / "labels").mkdir(parents=True)
    (tmp_path / "valid" / "labels" / "b.txt").write_text("")
    blank_image(tmp_path / "test" / "images" / "c.jpg", 10, 10)  # no label file: a background image
    assert detect_format(tmp_path) == "yolo"
    dataset = read_dataset(tmp_path)
    assert dataset.classes == ["helmet", "head"]
    items = items_by_name(dataset)
    np.testing.assert_allclose(items["a.jpg"].annotation.boxes, [[90, 40, 110, 60], [0, 50, 100, 100]])
    assert items["a.jpg"].annotation.labels == ["head", "helmet"]
    assert len(items["b.jpg"].annotation) == 0 and len(items["c.jpg"].annotation) == 0
    assert dataset.skipped == []


def test_yolo_as_label_studio_and_cvat_export_it(tmp_path):
    """Label Studio: images/ + labels/ + classes.txt. CVAT YOLO 1.1: obj.names, labels beside images."""
    studio = tmp_path / "studio"
    blank_image(studio / "images" / "x.png", 50, 50)
    (studio / "labels").mkdir()
    (studio / "labels" / "x.txt").write_text("1 0.5 0.5 0.2 0.2 0.9\n")  # with a score (save_conf)
    (studio / "classes.txt").write_text("Airplane\nCar\n")
    (studio / "notes.json").write_text('{"categories": [{"id": 0, "name": "Airplane"}], "info": {}}')
    assert detect_format(studio) == "yolo"
    annotation = read_dataset(studio).items[0].annotation
    assert annotation.labels == ["Car"]
    np.testing.assert_allclose(annotation.scores, [0.9])

    cvat = tmp_path / "cvat"
    blank_image(cvat / "obj_train_data" / "frame_0.jpg", 20, 40)
    (cvat / "obj_train_data" / "frame_0.txt").write_text("0 0.5 0.5 0.5 0.5\n1 0.1 0.2 0.3 0.2 0.5 0.4\n")
    (cvat / "obj.names").write_text("car\nbike\n")
    (cvat / "obj.data").write_text("classes = 2\ntrain = data/train.txt\nnames = data/obj.names\n")
    assert detect_format(cvat) == "yolo"
    dataset = read_dataset(cvat)
    item = dataset.items[0]
    np.testing.assert_allclose(item.annotation.boxes, [[10, 5, 30, 15], [4, 4, 20, 8]])  # the polygon's box
    assert item.annotation.labels == ["car", "bike"] and dataset.classes == ["car", "bike"]


def test_yolo_without_a_class_list_uses_the_indices(tmp_path):
    blank_image(tmp_path / "images" / "a.png", 10, 10)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("2 0.5 0.5 1 1\n")
    dataset = read_dataset(tmp_path)
    assert dataset.items[0].annotation.labels == ["2"] and dataset.classes == ["2"]
    assert "no data.yaml, classes.txt or obj.names" in dataset.notes[0]


def test_malformed_yolo_files_are_skipped_with_the_file_and_line_named(tmp_path):
    (tmp_path / "data.yaml").write_text("names: [a, b]\n")
    (tmp_path / "labels").mkdir()
    for name, text in [("ok", "0 0.5 0.5 0.5 0.5\n"), ("index", "0 0.5 0.5 0.1 0.1\n5 0.5 0.5 0.1 0.1\n"),
                       ("count", "0 0.5 0.5\n"), ("text", "car 0.5 0.5 0.1 0.1\n"),
                       ("mixed", "0 0.5 0.5 0.1 0.1 0.9\n1 0.5 0.5 0.1 0.1\n")]:
        blank_image(tmp_path / "images" / f"{name}.png", 10, 10)
        (tmp_path / "labels" / f"{name}.txt").write_text(text)
    (tmp_path / "labels" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    dataset = read_dataset(tmp_path)
    assert [item.name for item in dataset.items] == ["ok.png"]
    reasons = {path.name: reason for path, reason in dataset.skipped}
    assert reasons == {
        "index.txt": "line 2: class 5, but data.yaml names 2 classes",
        "count.txt": "line 1: expected 'class cx cy w h' (5 numbers), got 3",
        "text.txt": "line 1: not numbers: 'car 0.5 0.5 0.1 0.1'",
        "mixed.txt": "some lines have a score (6 numbers) and some not",
        "orphan.txt": "no image with this name",
    }


def test_malformed_data_yaml_names_the_file(tmp_path):
    blank_image(tmp_path / "images" / "a.png", 10, 10)
    (tmp_path / "data.yaml").write_text("names: [a, b\n")
    with pytest.raises(FormatError, match=r"data\.yaml: not valid YAML"):
        read_dataset(tmp_path)
    (tmp_path / "data.yaml").write_text("names: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(FormatError, match=r"data\.yaml: not valid YAML"):  # safe_load runs nothing
        read_dataset(tmp_path)


def test_coco_images_are_found_from_a_relative_folder(tmp_path, monkeypatch):
    blank_image(tmp_path / "data" / "images" / "a.jpg", 10, 10)
    write_json(tmp_path / "data" / "annotations" / "instances_val.json",
               {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [], "categories": []})
    monkeypatch.chdir(tmp_path / "data")
    item = read_dataset(".").items[0]
    assert item.image is not None and item.image.resolve() == tmp_path / "data" / "images" / "a.jpg"
    assert item.size == (10, 10)  # from the image header, as the JSON has none


def test_yolo_as_ultralytics_lays_it_out(tmp_path):
    """images/train + labels/train; data.yaml with a path and a names list."""
    (tmp_path / "data.yaml").write_text(f"path: {tmp_path}\ntrain: images/train\nval: images/val\nnames: [a, b]\n")
    blank_image(tmp_path / "images" / "train" / "images.png", 20, 20)  # "images" as a file name too
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "images.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    blank_image(tmp_path / "images" / "val" / "v.png", 20, 20)
    dataset = read_dataset(tmp_path)
    items = items_by_name(dataset)
    assert items["images.png"].annotation.labels == ["b"] and len(items["v.png"].annotation) == 0
    np.testing.assert_allclose(items["images.png"].annotation.boxes, [[5, 5, 15, 15]])


def test_coco_odd_values_are_refused_not_crashed_on(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text('{"images": [{"id": 1, "file_name": "a.jpg", "width": 1e999, "height": 5}],'
                    ' "categories": [{"id": 1, "name": "x"}],'
                    ' "annotations": [{"id": 1, "image_id": [1], "category_id": 1, "bbox": [0, 0, 1, 1]},'
                    ' {"id": 2, "image_id": 1, "category_id": {"a": 1}, "bbox": [0, 0, 1, 1]},'
                    ' {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": NaN}]}')
    dataset = read_dataset(tmp_path)
    assert dataset.items == []  # its only box has a NaN score
    reasons = [reason for _, reason in dataset.skipped]
    assert reasons == ["annotation 1: image_id [1] is not in 'images'",
                       "annotation 2: category_id {'a': 1} is not in 'categories'",
                       "image a.jpg: scores contain NaN or infinite values"]
    path.write_text('{"images": [{"id": [1], "file_name": "a.jpg"}]}')
    with pytest.raises(FormatError, match="image 0: needs an 'id'"):
        read_dataset(tmp_path)
