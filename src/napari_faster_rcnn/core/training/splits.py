"""Train / validation / test splits of one list of samples, by ratio and seed.

Each sample's place is decided by a hash of the seed and its image's file
name, not by its position in the list: the same images give the same split in
any order (a folder listing or the layers open in napari), and adding images
moves few of the old ones to another part. Part sizes follow the ratios with
largest-remainder rounding, so they always add up to the number of samples,
and every part with a positive ratio gets at least one sample.

The planes of one stack (samples with the same image file, each with its
``plane``) are one group: a stack lies wholly in one part, never with some of
its planes training and others validating the same scene a frame later. Groups
are ranked by the hash of their file name; the validation part, then the test
part, takes the first groups in that order that keep it within its size (the
smallest group when none fits), and the train part the rest. Folders of 2-D
images (one sample per file) split exactly as without groups.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

PART_NAMES = ("train", "validation", "test")


def split_samples(
    samples: Sequence, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[list, list, list]:
    """Split ``samples`` into ``(train, validation, test)`` lists.

    Parameters
    ----------
    samples : sequence
        Anything with an ``image`` path (:class:`~.samples.TrainingSample`,
        :class:`~.dataset.Sample`), or paths, or other values (their ``str``).
    ratios : (train, validation[, test]) floats
        Non-negative, adding up to 1; a missing test ratio is 0.
    seed : int
        The same seed and images give the same split.

    Returns
    -------
    train, validation, test : list
        Every sample in exactly one of them, each in the order of ``samples``.

    Raises
    ------
    ValueError
        For bad ratios, or when there are too few samples to give every part
        with a positive ratio at least one.
    """
    parts = split_indices(samples, ratios, seed)
    return tuple([samples[i] for i in part] for part in parts)


def split_indices(samples: Sequence, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0):
    """Like :func:`split_samples`, but the indices of the samples in each part."""
    ratios = check_ratios(ratios)
    sizes = part_sizes(len(samples), ratios)
    groups: dict[str, list[int]] = {}
    for index, sample in enumerate(samples):
        groups.setdefault(_group_key(sample, index), []).append(index)
    remaining = sorted(groups.values(), key=lambda group: (_rank_key(seed, samples[group[0]]), group[0]))
    held_out = []
    for size in sizes[1:]:
        chosen, count = [], 0
        for group in list(remaining):
            if count + len(group) <= size:
                chosen.append(group)
                count += len(group)
                remaining.remove(group)
            if count == size:
                break
        if size and not chosen and remaining:
            smallest = min(remaining, key=len)
            chosen.append(smallest)
            remaining.remove(smallest)
        held_out.append(sorted(index for group in chosen for index in group))
    train = sorted(index for group in remaining for index in group)
    if any(size and not part for size, part in zip(sizes, (train, *held_out))):
        raise ValueError(_too_few_files(len(samples), len(groups), ratios))
    return train, held_out[0], held_out[1]


def _too_few_files(count: int, files: int, ratios) -> str:
    needed = sum(1 for ratio in ratios if ratio > 0)
    return (
        f"cannot split {count} samples from {files} image file{'s' if files != 1 else ''} by the ratios "
        f"{', '.join(f'{r:g}' for r in ratios)}: the planes of one stack stay in one part, so each part needs "
        f"its own file ({needed} at least); label planes of another stack or image, give a separate validation "
        "folder, or set the validation and test ratios to 0"
    )


def _group_key(sample, index: int) -> tuple:
    """Samples of one image file (the planes of a stack) share a key; other samples have their own."""
    if getattr(sample, "plane", None) is None:
        return ("item", index)
    return ("stack", str(sample.image))


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """``(train, validation, test)`` ratios as floats, or a ``ValueError`` saying what is wrong."""
    wrong = f"split ratios must be two or three numbers (train, validation, test), got {ratios!r}"
    try:
        values = [float(r) for r in ratios]
    except (TypeError, ValueError):
        raise ValueError(wrong) from None
    if len(values) == 2:
        values.append(0.0)
    if len(values) != 3:
        raise ValueError(wrong)
    for name, value in zip(PART_NAMES, values):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"split ratio of the {name} part must be a number >= 0, got {value!r}")
    if values[0] == 0:
        raise ValueError("split ratio of the train part must be above 0")
    if abs(sum(values) - 1.0) > 1e-6:
        shown = " + ".join(f"{v:g}" for v in values)
        raise ValueError(f"split ratios must add up to 1, got {shown} = {sum(values):g}")
    return tuple(values)


def part_sizes(count: int, ratios: Sequence[float]) -> tuple[int, int, int]:
    """Sizes of the three parts: largest remainders, then at least one per positive ratio."""
    if count == 0:
        raise ValueError("no samples to split")
    exact = [r * count for r in ratios]
    sizes = [math.floor(x) for x in exact]
    # ties go to the earlier part (train, then validation)
    by_remainder = sorted(range(3), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in by_remainder[: count - sum(sizes)]:
        sizes[i] += 1
    for part in (1, 2):
        if ratios[part] > 0 and sizes[part] == 0:
            donor = max(range(3), key=lambda i: (sizes[i], -i))
            if sizes[donor] <= 1:
                needed = sum(1 for r in ratios if r > 0)
                empty = " or ".join(PART_NAMES[p] for p in (1, 2) if ratios[p] > 0)
                raise ValueError(
                    f"cannot split {count} sample{'s' if count != 1 else ''} by the ratios "
                    f"{', '.join(f'{r:g}' for r in ratios)}: each part needs at least one, so at least "
                    f"{needed} samples; label more images or set the {empty} ratio to 0"
                )
            sizes[donor] -= 1
            sizes[part] += 1
    return tuple(sizes)


def _rank_key(seed: int, sample) -> bytes:
    image = getattr(sample, "image", sample)
    name = Path(image).name if isinstance(image, (str, Path)) else str(image)
    return hashlib.blake2b(f"{seed}\0{name}".encode(), digest_size=8).digest()
