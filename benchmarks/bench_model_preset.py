"""Training step time per image: the "cpu" preset against the "default" ResNet-50 FPN, same image size.

Both models get the same synthetic images (circles, squares and triangles with
their boxes) at each image size, with ``min_size = max_size`` set to that size
so that neither resizes differently. The default preset is timed as it trains
from its COCO weights (frozen BatchNorm, the first two backbone blocks fixed),
with no weights loaded: loading changes no time. Steps of the two models
alternate, so that a busy machine slows both alike; the median step counts.
Prediction (eval mode, no gradients) is timed the same way, for reference.

Target (issue 4): the cpu preset trains at least 4x faster per image than the
default at every size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from napari_faster_rcnn.core.data.synthetic import SHAPE_CLASSES, make_synthetic_sample  # noqa: E402
from napari_faster_rcnn.core.model.config import preset  # noqa: E402
from napari_faster_rcnn.core.model.detector import build_model  # noqa: E402

TARGET_RATIO = 4.0


def batch(size: int, images: int):
    pictures, targets = [], []
    for index in range(images):
        image, annotation = make_synthetic_sample(0, index, height=size, width=size)
        pictures.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
        labels = [SHAPE_CLASSES.index(label) + 1 for label in annotation.labels]
        targets.append({"boxes": torch.as_tensor(annotation.boxes, dtype=torch.float32),
                        "labels": torch.as_tensor(labels, dtype=torch.int64)})
    return pictures, targets


def trainer(model, pictures, targets):
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

    def step():
        model.train()
        losses = model(pictures, targets)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()

    return step


def predictor(model, pictures):
    def run():
        model.eval()
        with torch.no_grad():
            model(pictures)

    return run


def alternate(functions: dict, repeat: int) -> dict:
    """Median seconds of each function, called in turn ``repeat`` times after one warm-up call each."""
    for function in functions.values():
        function()
    times = {name: [] for name in functions}
    for _ in range(repeat):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="image sizes (square), pixels")
    parser.add_argument("--images", type=int, default=4, help="images per training step")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 unless the cpu preset is >= {TARGET_RATIO:g}x "
                        "faster per training image at every size")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows = [("", "train ms/image", "predict ms/image", "parameters")]
    summary = {"threads": torch.get_num_threads(), "images_per_step": args.images, "sizes": {}}
    failed = []
    for size in args.sizes:
        limits = {"min_size": size, "max_size": size}
        configs = {"cpu": preset("cpu", SHAPE_CLASSES, **limits), "default": preset("default", SHAPE_CLASSES, **limits)}
        # The default's architecture as it trains from COCO weights, without loading them.
        models = {name: build_model(config, weights="none") for name, config in configs.items()}
        pictures, targets = batch(size, args.images)
        train = alternate({name: trainer(m, pictures, targets) for name, m in models.items()}, args.repeat)
        predict = alternate({name: predictor(m, pictures) for name, m in models.items()}, args.repeat)
        ratio = train["default"] / train["cpu"]
        entry = {"ratio": round(ratio, 2)}
        for name, model in models.items():
            parameters = sum(p.numel() for p in model.parameters())
            rows.append((f"{size} px  {name}", f"{1000 * train[name] / args.images:.1f}",
                         f"{1000 * predict[name] / args.images:.1f}", f"{parameters / 1e6:.1f} M"))
            entry[f"{name}_train_ms_per_image"] = round(1000 * train[name] / args.images, 2)
            entry[f"{name}_predict_ms_per_image"] = round(1000 * predict[name] / args.images, 2)
        rows.append((f"{size} px  ratio default / cpu", f"{ratio:.1f}x",
                     f"{predict['default'] / predict['cpu']:.1f}x", ""))
        summary["sizes"][str(size)] = entry
        if ratio < TARGET_RATIO:
            failed.append(f"{size} px: {ratio:.2f}x")
    report(f"Training step per image, cpu preset vs default ResNet-50 FPN ({torch.get_num_threads()} threads)",
           rows, summary)
    if args.check and failed:
        print(f"FAILED: the cpu preset is not {TARGET_RATIO:g}x faster: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
