"""Dataset statistics: image sizes, boxes per image, box width, height and area, as stored
and after the model's transform, overall and per class, with the boxes of each class.

Image sizes come from the file headers (no pixels are decoded). The transform
is torchvision's GeneralizedRCNNTransform: each image is resized so that its
short side becomes --min-size unless its long side would then pass --max-size.
--plots saves the histograms as PNG (a folder gets dataset_statistics.png).
"""

from __future__ import annotations

HELP = "print image and box statistics of a dataset folder (before and after the model's transform)"

PLOT_FILE = "dataset_statistics.png"


def configure(parser) -> None:
    parser.add_argument("dataset", metavar="DATASET",
                        help="a dataset folder (input/ + target/, or images with their annotations beside them)")
    parser.add_argument("--min-size", type=int, default=800,
                        help="the model's min_size: the short side after resizing (default 800, torchvision's)")
    parser.add_argument("--max-size", type=int, default=1333,
                        help="the model's max_size: the long side's limit after resizing (default 1333)")
    parser.add_argument("--plots", metavar="DIR or FILE.png",
                        help="save the histograms (as stored and after the transform) as PNG; "
                        f"a folder gets {PLOT_FILE}")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON object (images, boxes, classes, summary, per_class, skipped, ...)")


def run(args) -> int:
    import json
    import sys

    from napari_faster_rcnn.core.statistics.folders import folder_statistics

    for flag, value in (("--min-size", args.min_size), ("--max-size", args.max_size)):
        if value < 1:
            raise ValueError(f"{flag} must be a positive number of pixels, got {value}")
    plot_path = _plot_path(args.plots) if args.plots else None
    stats = folder_statistics(args.dataset, args.min_size, args.max_size)
    for path, reason in stats.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if stats.images == 0:
        raise ValueError(f"{args.dataset}: no image could be read ({len(stats.skipped)} files skipped)")
    if args.json:
        print(json.dumps(stats.to_dict(), indent=1))
    else:
        print(format_table(stats))
    if plot_path is not None:
        save_plots(stats, plot_path)
        print(f"saved the histograms to {plot_path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _plot_path(target: str):
    from pathlib import Path

    path = Path(target)
    if path.is_dir() or not path.suffix:
        return path / PLOT_FILE
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: the plots are saved as PNG; give a folder or a name ending in .png")
    return path


def save_plots(stats, path) -> None:
    """Draw the histograms as stored and after the transform side by side, and save them as PNG."""
    import io

    from napari_faster_rcnn.core.data.atomic_files import atomic_write_bytes
    from napari_faster_rcnn.core.statistics.plots import plot_statistics

    figure = plot_statistics(stats, transformed="both")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, facecolor=figure.get_facecolor())
    atomic_write_bytes(path, buffer.getvalue())


def format_table(stats) -> str:
    """The statistics as plain text: counts, then each quantity as stored and after the transform."""
    lines = [
        f"{stats.images} images, {stats.boxes} boxes, {stats.images_without_boxes} images without boxes"
        + (f" ({stats.unlabeled_images} without an annotation file)" if stats.unlabeled_images else "")
        + (f", {stats.clipped_boxes} boxes cut at the image border" if stats.clipped_boxes else "")
        + (f", {len(stats.skipped)} files skipped" if stats.skipped else ""),
        f"transform: min_size {stats.min_size}, max_size {stats.max_size}",
        "",
    ]
    counts, image_counts = stats.class_counts, stats.class_image_counts
    width = max([len("class"), *(len(name) for name in stats.classes)])
    lines.append(f"{'class':<{width}}  {'boxes':>7}  {'images':>7}")
    for name in stats.classes:
        lines.append(f"{name:<{width}}  {counts[name]:>7}  {image_counts[name]:>7}")
    lines.append("")

    rows = stats.summary()
    label_width = max(len(_row_label(row)) for row in rows)
    figures = ("min", "median", "mean", "max")
    cells = "  ".join(f"{name:>9}" for name in figures)
    lines.append(f"{'':<{label_width}}  {'as stored':^{len(cells)}}  |  {'after the transform':^{len(cells)}}")
    lines.append(f"{'quantity':<{label_width}}  {cells}  |  {cells}")
    by_key = {(row.quantity, row.class_name, row.transformed): row for row in rows}
    for row in rows:
        if row.transformed:
            continue
        after = by_key[(row.quantity, row.class_name, True)]
        lines.append(f"{_row_label(row):<{label_width}}  {_figures(row)}  |  {_figures(after)}")
    return "\n".join(lines)


def _row_label(row) -> str:
    from napari_faster_rcnn.core.statistics.measures import LABELS

    label = LABELS[row.quantity]
    return label if row.class_name is None else f"  {row.class_name}: {label}"


def _figures(row) -> str:
    return "  ".join(f"{_number(value):>9}" for value in (row.minimum, row.median, row.mean, row.maximum))


def _number(value: float) -> str:
    if value != value:
        return "-"
    if float(value).is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}"
