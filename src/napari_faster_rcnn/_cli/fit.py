"""Train a detector: Lightning's command line over DetectorModule and DetectionDataModule.

    napari-faster-rcnn fit --config run.yaml
    napari-faster-rcnn fit --data.root DATASET --model.preset cpu --trainer.max_epochs 20
    napari-faster-rcnn fit --config run.yaml --trainer.devices 4 --trainer.strategy ddp
    napari-faster-rcnn fit --config run.yaml --ckpt_path runs/train/checkpoints/last.ckpt
    napari-faster-rcnn fit --print_config > run.yaml

Every option of the config file is also a flag (``--model.*``, ``--data.*``,
all of Lightning's ``--trainer.*``), so the same run goes to several GPUs or
nodes (torchrun, SLURM's srun) unchanged. The run folder is
``--trainer.default_root_dir`` (default ``runs/train``): ``checkpoints/best.ckpt``
and ``last.ckpt``, ``config.yaml``, ``logs/version_N/metrics.csv``.
"""

from __future__ import annotations

HELP = "train a detector (Lightning's CLI: --config run.yaml, every option also a flag, --print_config)"
PASSTHROUGH = True


def run(argv) -> int:
    import os

    # Lightning 2.6 calls jsonargparse methods deprecated in its 4.49; nothing a user can act on.
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    from napari_faster_rcnn._cli._fit_cli import run_fit
    from napari_faster_rcnn.core.model.weights import WeightsError

    try:
        return run_fit(list(argv))
    except SystemExit as exit_:  # the parser's --help, --print_config and usage errors
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    except WeightsError as error:
        import sys

        print(f"error: {error}\n(to train from scratch without downloading: --model.config.weights none, or "
              "--model.preset cpu for small images on a CPU)", file=sys.stderr)
        return 2
