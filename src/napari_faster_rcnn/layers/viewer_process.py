"""Settings the viewer's process needs before torch loads; imported once, by ``layers/__init__.py``.

Every way napari enters this plugin (the reader, the writer, the sample data, a
dock widget) imports the napari tier, so its ``__init__`` runs this module before
any module here imports torch. The command line does not import the napari tier
and keeps torch's defaults. Two settings, each of which only works before torch
(or torchvision) is first imported:

**OpenMP threads wait passively.** By default torch's OpenMP threads spin on
their core between parallel regions. In napari's process the event loop needs a
core too: with spinning threads a training step in the viewer took 885 ms,
waiting passively 85 ms, and napari's event loop waited up to 156 ms instead of
56 ms (one run, a loaded 2-core machine). On an idle machine passive waiting
makes a CPU step about 15 to 25% slower; the viewer's responsiveness comes
first. ``OMP_WAIT_POLICY`` is set to ``PASSIVE`` unless the environment sets it
(``OMP_WAIT_POLICY=ACTIVE`` restores the default); OpenMP reads it once, when
torch loads it.

**Triton stays out of a viewer whose OpenGL is Mesa.** ``import torchvision``
imports ``torch._dynamo``, which imports Triton when it is installed (CUDA
builds of torch bring it). Triton's library carries its own LLVM; loaded into a
process where Mesa's ``libLLVM`` is already mapped (napari's canvas under Xvfb
with llvmpipe, or on AMD GPUs with radeonsi) the process dies with a
segmentation fault. Which comes first depends on what the user clicks, so an
import hook decides when torch or Triton is first imported: with Mesa's LLVM
mapped, Triton is made to look not installed (``sys.modules["triton"] = None``,
which torch handles). The viewer then only lacks ``torch.compile``'s GPU
kernels; training and prediction do not compile.
"""

from __future__ import annotations

import os
import sys


def wait_passively() -> bool:
    """Ask OpenMP to wait passively, if torch is not loaded yet; True when the setting will apply."""
    if "torch" in sys.modules:
        return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"


def mesa_llvm_loaded() -> bool:
    """Whether a ``libLLVM`` is mapped into this process (Linux; False elsewhere)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("libLLVM" in line for line in maps)
    except OSError:
        return False


class TritonGuard:
    """A meta path finder that hides ``triton`` once Mesa's LLVM is mapped, when torch or
    Triton is first imported; it finds nothing itself."""

    def find_spec(self, name, path=None, target=None):
        if name in ("torch", "triton") and "triton" not in sys.modules and mesa_llvm_loaded():
            sys.modules["triton"] = None  # how a Python without Triton looks to torch
            if name == "triton":
                raise ModuleNotFoundError("No module named 'triton' (hidden next to Mesa's OpenGL)", name=name)
        return None  # the normal finders load the module


def install_triton_guard() -> None:
    """Put the :class:`TritonGuard` first on the import path, once (Linux only)."""
    if sys.platform.startswith("linux") and not any(isinstance(f, TritonGuard) for f in sys.meta_path):
        sys.meta_path.insert(0, TritonGuard())


wait_passively()
install_triton_guard()
