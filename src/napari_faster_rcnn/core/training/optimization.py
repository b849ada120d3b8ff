"""Optimizers and learning-rate schedules for training a detector.

Two optimizers, as people fine-tune torchvision's detectors:

- ``"sgd"`` (the default): SGD with momentum 0.9 and weight decay 1e-4, as
  torchvision's detection references train, at 0.005 by default (the
  fine-tuning tutorial's rate for batches of a few images);
- ``"adamw"``: AdamW, at 1e-4 by default; from scratch (the ``cpu`` preset)
  1e-3 trains faster.

The schedule is stepped after every optimizer step, not every epoch, so it
means the same for a dataset of 20 images and of 20,000: a linear warm-up from
``warmup_factor`` of the rate to the full rate over ``warmup_steps`` (large
early gradients of a freshly initialized box predictor otherwise throw the
pretrained weights off), then

- ``"cosine"``: down to 0 along half a cosine by the last step;
- ``"multistep"``: times ``gamma`` at each of ``milestones`` (fractions of the
  total steps; torchvision's references drop at 16 and 22 of 26 epochs, about
  0.6 and 0.85);
- ``"constant"``: the full rate to the end.

The schedule is a ``LambdaLR`` over a plain function of the step, so its state
in a checkpoint is numbers only (``LambdaLR`` saves no function).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("cosine", "multistep", "constant")
#: The learning rate used when none is given.
DEFAULT_LEARNING_RATES = {"sgd": 0.005, "adamw": 1e-4}


def check_optimization(optimizer: str, scheduler: str, learning_rate: float | None, warmup_steps: int,
                       milestones: Sequence[float], gamma: float, weight_decay: float, momentum: float) -> None:
    """Raise ``ValueError`` naming the setting when one of them is impossible."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    if learning_rate is not None and not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    if int(warmup_steps) != warmup_steps or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be a whole number >= 0, got {warmup_steps!r}")
    if any(not 0.0 < float(point) < 1.0 for point in milestones) or list(milestones) != sorted(milestones):
        raise ValueError(f"milestones must be increasing fractions of the training, between 0 and 1, got "
                         f"{list(milestones)}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")


def build_optimizer(parameters: Iterable[torch.nn.Parameter], optimizer: str, learning_rate: float,
                    weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW over the parameters that train."""
    trainable = [parameter for parameter in parameters if parameter.requires_grad]
    if optimizer == "sgd":
        return torch.optim.SGD(trainable, lr=learning_rate, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=weight_decay)


def schedule_factor(step: int, total_steps: int, scheduler: str, warmup_steps: int, warmup_factor: float = 0.001,
                    milestones: Sequence[float] = (0.6, 0.85), gamma: float = 0.1) -> float:
    """The multiplier of the learning rate after ``step`` optimizer steps (see the module docstring)."""
    total_steps = max(int(total_steps), 1)
    warmup_steps = min(int(warmup_steps), total_steps)
    if step < warmup_steps:
        return warmup_factor + (1.0 - warmup_factor) * step / warmup_steps
    if scheduler == "cosine":
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    if scheduler == "multistep":
        passed = sum(1 for point in milestones if step >= point * total_steps)
        return gamma**passed
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, scheduler: str, warmup_steps: int,
                    milestones: Sequence[float] = (0.6, 0.85), gamma: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` of :func:`schedule_factor`, to be stepped after every optimizer step."""
    milestones = tuple(float(point) for point in milestones)

    def factor(step: int) -> float:
        return schedule_factor(step, total_steps, scheduler, warmup_steps, milestones=milestones, gamma=gamma)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
