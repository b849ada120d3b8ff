"""Train a detector on built-in data, on a CPU, in a minute or two: the main job, end to end.

Makes the synthetic shapes dataset (training, validation and a held-out test
set), trains the "cpu" preset from scratch (nothing is downloaded), evaluates
the best checkpoint on the test set and writes into the output folder: the
checkpoints (checkpoints/best.ckpt, last.ckpt), curves.png (training loss per
step, validation mAP per epoch), predictions_*.png (test images with their
predicted and true boxes), results.json, and prints a results table.
"""

from __future__ import annotations

HELP = "train the cpu preset on synthetic shapes and evaluate it on held-out images (no downloads)"


def configure(parser) -> None:
    parser.add_argument("--output", default="demo_output", help="folder for everything it writes (default demo_output)")
    parser.add_argument("--images", type=int, default=256, help="training images (default 256)")
    parser.add_argument("--validation-images", type=int, default=32, help="validation images (default 32)")
    parser.add_argument("--test-images", type=int, default=100, help="held-out test images (default 100)")
    parser.add_argument("--steps", type=int, default=320,
                        help="training steps, rounded up to whole epochs (default 320: 10 epochs of 32)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per step (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the training (default 0)")
    parser.add_argument("--accelerator", default="cpu", choices=("cpu", "auto", "cuda", "mps"),
                        help="where to train (default cpu, the figures in benchmarks/README.md)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: one per CPU but one, at most 4)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo's files in --output")
    parser.add_argument("--json", action="store_true", help="print one line of JSON alone on stdout (progress goes to stderr): voc_map, coco_map, "
                        "seconds, per_class, steps, images, checkpoint, ...")


def default_threads() -> int:
    """Torch threads for the demo: one per CPU but one, at most 4.

    A core stays free because torch's threads wait for each other at every
    operation: when another program takes a core one of them counts on, each
    step waits for it. On the shared 2-core machine, with another process
    busy, a step of 2 threads took 1 to 2 s, of 1 thread 0.14 s (0.09 and 0.12 s
    on an idle machine); beyond 4 threads the demo's small model gains nothing.
    """
    import os

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus - 1))


def run(args) -> int:
    import contextlib
    import json
    import logging
    import sys
    import time
    import warnings

    start = time.perf_counter()

    def say(line: str) -> None:
        print(f"[{time.perf_counter() - start:5.1f} s] {line}", file=sys.stderr if args.json else sys.stdout,
              flush=True)

    say("loading torch, torchvision and Lightning")
    import torch

    from napari_faster_rcnn.core.training.demo import format_results, run_demo

    torch.set_num_threads(args.threads or default_threads())
    # Lightning's notes on small datasets and its tips are noise for a fixed demo.
    warnings.filterwarnings("ignore", message=r".*(smaller than the logging interval|LeafSpec|does not have many "
                            r"workers).*")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Lightning's progress bar writes to stdout; with --json, stdout holds the JSON line alone.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        results = run_demo(
            args.output, train_images=args.images, validation_images=args.validation_images,
            test_images=args.test_images, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
            accelerator=args.accelerator, overwrite=args.overwrite, say=say,
        )
    results["seconds"] = round(time.perf_counter() - start, 1)
    results["threads"] = torch.get_num_threads()
    table = format_results(results)
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(results))
    else:
        print(table)
    return 0
