"""Lightning's messages that say nothing about the run, kept out of what a person reads.

A run's output should be about the run: the data, the device, the progress,
the checkpoints and the metrics. :func:`quiet_lightning` drops

- Lightning's tips for its cloud products (``"💡 Tip: ..."``) and its note
  that it loads the training data to count the steps;
- deprecation warnings (``DeprecationWarning``, ``FutureWarning``) raised in
  other libraries' code: one library calling another's deprecated function is
  nothing a user can act on (this package's own still show);
- "The number of training batches (N) is smaller than the logging interval":
  Lightning counts the logging interval over the whole run, so the loss is
  logged anyway (every ``log_every_n_steps`` steps, across epochs);
- "Checkpoint directory ... exists and is not empty": the run folder is
  checked before training (another run's checkpoints are refused unless the
  run resumes or overwrites), so the folder holding checkpoints is expected.

It changes process-wide filters (the warnings filters, a filter on
Lightning's info logger), adding each once, and can be called before every run.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["quiet_lightning"]

#: Beginnings of Lightning's info messages that are not about the run.
NOISE_INFO = ("💡 Tip:", "Loading `train_dataloader` to estimate number of stepping batches")
#: Lightning's warnings (regular expressions matched at the message's start) that are not about the run.
NOISE_WARNINGS = (
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    r"Checkpoint directory .* exists and is not empty",
)
# Lightning's info messages go through these loggers (rank_zero_info).
_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
# A warning attributed to any module but ours (warnings matches this at the module name's start).
_OTHER_MODULES = r"(?!napari_faster_rcnn\b)"


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(NOISE_INFO)


def quiet_lightning() -> None:
    """Drop Lightning's messages and the library warnings that are not about the run (see the module)."""
    for name in _INFO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _DropNoise) for existing in logger.filters):
            logger.addFilter(_DropNoise())
    # filterwarnings replaces an equal filter rather than adding a second one
    for message in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=_OTHER_MODULES)
