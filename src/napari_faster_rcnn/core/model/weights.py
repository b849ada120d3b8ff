"""Pretrained weights: torchvision's ImageNet and COCO files, and local weights files.

torchvision's weights API names the file of each set of weights (its URL, with
a hash prefix in the name) and where ``torch.hub`` caches it
(``torch.hub.get_dir()/checkpoints/NAME``). We use that cache, but fetch and
read the file ourselves, for two reasons:

- **Nothing hangs.** The download runs with a socket timeout, so a machine
  without network fails in seconds with :class:`WeightsError`, which names the
  URL and the exact path to put the file at by hand.
- **Nothing runs.** Every file, downloaded or local, is read with
  ``torch.load(weights_only=True)``; torchvision's own loader does not ask for
  that, and a file placed by hand deserves the same care as a local one.

A local file may hold a whole detector (our own state dict, a Lightning
checkpoint's ``state_dict``, torchvision's COCO file) or only a backbone (an
ImageNet classifier, or ``model.backbone``); which one is told by matching its
tensor names and shapes against the model, under any common prefix
(``model.``, ``module.``, ``features.``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from napari_faster_rcnn.core.data.safe_load import load_torch_file

__all__ = [
    "DOWNLOAD_TIMEOUT_SECONDS",
    "WeightsError",
    "cached_weights_path",
    "download_file",
    "fetch_weights",
    "load_local_weights",
    "load_matching",
    "read_state_dict",
]

log = logging.getLogger(__name__)

#: Seconds a download waits to connect or for the next bytes before it gives up.
DOWNLOAD_TIMEOUT_SECONDS = 15.0

# A detector file may differ from the model in these parts; they are then newly initialized.
REPLACEABLE = ("roi_heads.box_predictor.", "rpn.head.cls_logits.", "rpn.head.bbox_pred.", "roi_heads.box_head.")


class WeightsError(RuntimeError):
    """Weights that cannot be had or do not fit; the message says why and what to do."""


def cached_weights_path(url: str) -> Path:
    """Where ``torch.hub`` keeps the file of ``url``: ``torch.hub.get_dir()/checkpoints/NAME``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def download_file(url: str, destination: Path, timeout: float = DOWNLOAD_TIMEOUT_SECONDS) -> None:
    """Download ``url`` to ``destination`` atomically, checking the hash prefix in its name.

    Raises ``OSError`` (``urllib.error.URLError``, ``TimeoutError``) or
    ``ValueError`` (a hash mismatch); :func:`fetch_weights` turns them into
    :class:`WeightsError`.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": "napari-faster-rcnn"})
    descriptor, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(descriptor, "wb") as file, urllib.request.urlopen(request, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                file.write(chunk)
        expected = torch.hub.HASH_REGEX.search(destination.name)
        if expected and not digest.hexdigest().startswith(expected.group(1)):
            raise ValueError(f"its SHA-256 does not start with {expected.group(1)} (a corrupt download)")
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def fetch_weights(weights, what: str, timeout: float = DOWNLOAD_TIMEOUT_SECONDS) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision ``Weights`` entry, from torch's cache or downloaded into it.

    Parameters
    ----------
    weights
        A member of a torchvision ``WeightsEnum`` (it gives the URL).
    what
        What these weights are, for messages ("COCO weights for fasterrcnn_resnet50_fpn").

    Raises
    ------
    WeightsError
        When the file cannot be downloaded (saying why, the URL and where to place
        the file by hand) or cannot be read.
    """
    url = weights.url
    path = cached_weights_path(url)
    if not path.is_file():
        log.info("downloading %s from %s to %s", what, url, path)
        try:
            download_file(url, path, timeout)
        except (OSError, ValueError, socket.timeout) as error:
            reason = getattr(error, "reason", None) or error
            if isinstance(error, urllib.error.HTTPError):
                reason = f"HTTP {error.code} {error.reason}"
            elif isinstance(reason, (socket.timeout, TimeoutError)):
                reason = f"no answer within {timeout:g} s"
            raise WeightsError(
                f"could not download the {what} ({type(weights).__name__}.{weights.name}): {reason}. "
                f"If this machine has no network, download {url} on one that has and place the file, under "
                f"the same name, at {path} (torch.hub.get_dir()/checkpoints), or give the file's path as "
                "the weights."
            ) from error
    return read_state_dict(path)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, read with ``weights_only=True``.

    Accepts a plain state dict or a checkpoint holding one under ``state_dict``,
    ``model`` or ``model_state_dict`` (Lightning, torchvision's references).
    """
    path = Path(path)
    loaded = load_torch_file(path, "weights", WeightsError)
    state = _find_state_dict(loaded)
    if state is None:
        raise WeightsError(f"{path}: holds no state dict (a mapping of parameter names to tensors)")
    return state


def _find_state_dict(loaded) -> dict | None:
    if not isinstance(loaded, Mapping):
        return None
    tensors = {key: value for key, value in loaded.items() if isinstance(value, torch.Tensor)}
    if tensors and len(tensors) >= len(loaded) / 2:
        return {str(key): value for key, value in tensors.items()}
    for key in ("state_dict", "model", "model_state_dict"):
        found = _find_state_dict(loaded.get(key))
        if found:
            return found
    return None


def _optional(key: str) -> bool:
    return key.endswith("num_batches_tracked")  # absent from FrozenBatchNorm and old files


def _align(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]):
    """``state`` renamed onto ``own``'s names, under the prefix most of its names share.

    Returns ``(aligned, extra)``: the tensors whose names ``own`` has, and the
    names under that prefix it lacks.
    """
    prefixes: Counter = Counter()
    for key in state:
        parts = key.split(".")
        for start in range(len(parts)):
            if ".".join(parts[start:]) in own:
                prefixes[".".join(parts[:start])] += 1
    if not prefixes:
        return {}, []
    prefix = prefixes.most_common(1)[0][0]
    cut = len(prefix) + 1 if prefix else 0
    under = {key[cut:]: value for key, value in state.items() if key.startswith(prefix)}
    aligned = {key: value for key, value in under.items() if key in own}
    return aligned, [key for key in under if key not in own and not _optional(key)]


def _fit(module: nn.Module, state: Mapping[str, torch.Tensor]):
    """``(fitting, missing, wrong_shape)`` of ``state`` against ``module``'s own tensors."""
    fitting, missing, wrong = {}, [], []
    for key, tensor in module.state_dict().items():
        if key not in state:
            if not _optional(key):
                missing.append(key)
        elif tuple(state[key].shape) != tuple(tensor.shape):
            wrong.append((key, tuple(state[key].shape), tuple(tensor.shape)))
        else:
            fitting[key] = state[key]
    return fitting, missing, wrong


def load_matching(
    module: nn.Module, state: Mapping[str, torch.Tensor], source: str, replaceable=(), replace=()
) -> list[str]:
    """Load ``state`` into ``module``; tensors under ``replaceable`` prefixes may be missing or differ.

    Tensors under ``replace`` are never loaded (a new box predictor for COCO
    weights). Returns the names left newly initialized.

    Raises
    ------
    WeightsError
        When anything else is missing or has another shape, listing a few.
    """
    own = module.state_dict()
    state = {key: value for key, value in state.items() if not any(key.startswith(p) for p in replace)}
    fitting, missing, wrong = _fit(module, state)
    problems = [key for key in missing if not key.startswith(tuple(replaceable))]
    problems += [f"{key} is {tuple(got)} in the file, {tuple(want)} in the model"
                 for key, got, want in wrong if not key.startswith(tuple(replaceable))]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise WeightsError(f"{source}: does not fit this model: {shown}")
    module.load_state_dict(fitting, strict=False)
    fresh = sorted({key.rsplit(".", 1)[0] for key in own if key not in fitting and not _optional(key)})
    if fresh:
        log.info("%s: newly initialized: %s", source, ", ".join(fresh))
    return fresh


def load_local_weights(model: nn.Module, path: str | Path, description: str) -> str:
    """Load a local weights file into a detector: a whole detector, or its backbone.

    Returns ``"detector"`` or ``"backbone"``, what the file was taken for. A
    detector file's box predictor (and RPN or box head, when they differ in
    shape, as after changing the classes or the anchors) is newly initialized.

    Raises
    ------
    WeightsError
        When the file cannot be read or fits neither, with what did not fit.
    """
    path = Path(path)
    state = read_state_dict(path)
    candidates = [("detector", model), ("backbone", model.backbone), ("backbone", model.backbone.body)]
    tried = []
    for kind, module in candidates:
        own = module.state_dict()
        aligned, extra = _align(state, own)
        fitting, missing, wrong = _fit(module, aligned)
        if kind == "detector":
            # Extra names mean another architecture (more blocks, other heads).
            backbone_ok = not extra and not any(key.startswith("backbone.") for key in missing) and not any(
                key.startswith("backbone.") for key, _, _ in wrong)
            heads = any(not key.startswith("backbone.") for key in fitting)
            if backbone_ok and heads:
                load_matching(model, aligned, str(path), replaceable=REPLACEABLE)
                return "detector"
        else:
            # A classifier has parts a backbone lacks (its head, stages past the cut), but not
            # more blocks inside the stages the backbone has.
            tops = {key.split(".")[0] for key in own}
            extra = [key for key in extra if key.split(".")[0] in tops]
            if not missing and not wrong and not extra:
                module.load_state_dict(fitting, strict=False)
                log.info("%s: loaded as the backbone's weights; the rest is newly initialized", path)
                return "backbone"
        needed = sum(1 for key in own if not _optional(key))
        fitted = sum(1 for key in fitting if not _optional(key))
        tried.append((fitted / max(needed, 1), kind, fitted, needed, missing, wrong, extra))
    share, kind, fitted, needed, missing, wrong, extra = max(tried, key=lambda entry: entry[0])
    details = [f"missing {key}" for key in missing[:2]]
    details += [f"{key} is {got} in the file, {want} in the model" for key, got, want in wrong[:2]]
    details += [f"the model has no {key}" for key in extra[:2]]
    raise WeightsError(
        f"{path}: neither a detector nor a backbone state dict for {description}: read as a {kind}, "
        f"{fitted} of {needed} tensors fit ({'; '.join(details) or 'no names in common'}). Was it saved "
        "from a model with another backbone, FPN setting or head?"
    )
