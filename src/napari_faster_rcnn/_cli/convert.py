"""Convert a dataset folder between COCO JSON, Pascal VOC XML, YOLO txt and our own
input/ + target/*.pt layout.

SRC is read in the format it is in (detected, or named with --from); DST must
be a new or empty folder, so nothing is ever overwritten. Images are
hard-linked into DST where the file system allows, else copied (--copy always
copies); the files in SRC are never moved or changed. Coordinates are
converted exactly: COCO [x, y, w, h], VOC 1-based inclusive pixels, YOLO
centre and size divided by the image size. Boxes that reach outside their
image are cut at its border, as our own files are saved, and the summary says
how many. The new folder is built under a hidden name beside DST
(.DST.partial-...) and renamed when whole; one that a killed run left is
removed by the next run to the same DST.
"""

from __future__ import annotations

HELP = "convert a dataset folder between COCO, Pascal VOC, YOLO and our .pt layout"

FORMATS = ("coco", "voc", "yolo", "pt")


def configure(parser) -> None:
    parser.add_argument("source", metavar="SRC", help="the dataset folder to read")
    parser.add_argument("destination", metavar="DST", help="the new folder to write (must not exist, or be empty)")
    parser.add_argument("--to", required=True, choices=FORMATS, help="the format to write")
    parser.add_argument("--from", dest="source_format", choices=FORMATS, metavar="FORMAT",
                        help="the format of SRC (coco, voc, yolo or pt; detected when not given)")
    parser.add_argument("--copy", action="store_true", help="copy the images instead of hard-linking them")


def run(args) -> int:
    import sys

    from napari_faster_rcnn.core.formats import convert_dataset

    try:
        report = convert_dataset(args.source, args.destination, args.to, args.source_format, link_images=not args.copy)
    except PermissionError as error:  # a user's mistake too: a folder they cannot write
        raise ValueError(f"{error.filename}: {error.strerror}") from None
    print(report.summary())
    if report.skipped:
        print(f"warning: {len(report.skipped)} files or images were skipped (listed above)", file=sys.stderr)
    return 0
