"""Write the synthetic shapes dataset (circles, squares, triangles) to a folder as input/ + target/."""

from __future__ import annotations

HELP = "write the synthetic shapes dataset to a folder"


def configure(parser) -> None:
    parser.add_argument("folder", help="where to write input/*.png and target/*.pt")
    parser.add_argument("--images", type=int, default=64, help="number of images (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=128, help="image height and width in pixels (default 128)")


def run(args) -> int:
    from pathlib import Path

    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset

    if args.images < 1:
        raise ValueError(f"--images must be at least 1, got {args.images}")
    folder = Path(args.folder)
    if (folder / "input").exists() and any((folder / "input").iterdir()):
        raise FileExistsError(f"{folder / 'input'} already holds files; choose an empty folder")
    write_synthetic_dataset(folder, args.images, seed=args.seed, height=args.size, width=args.size)
    print(f"wrote {args.images} images to {folder / 'input'} and their boxes to {folder / 'target'}")
    return 0
