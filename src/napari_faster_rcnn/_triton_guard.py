"""Keep Triton out of a viewer whose OpenGL is Mesa: loading both crashes the process.

``import torchvision`` imports ``torch._dynamo``, which imports Triton when it
is installed (CUDA builds of torch bring it). Triton's library carries its own
LLVM; loaded into a process where Mesa's ``libLLVM`` is already mapped (the
OpenGL of napari's canvas under Xvfb with llvmpipe, or on AMD GPUs with
radeonsi), the process dies with a segmentation fault. Which comes first
depends on what the user clicks, so an import hook decides when torch or
Triton is first imported: with Mesa's LLVM mapped, Triton is made to look
not installed (``sys.modules["triton"] = None``: ``import triton`` raises
``ModuleNotFoundError`` and ``importlib.util.find_spec`` says None, which torch
handles). The viewer process then only lacks ``torch.compile``'s GPU kernels;
training and prediction do not compile.

Importing this module installs the hook once (Linux only); napari-facing
modules import it.
"""

from __future__ import annotations

import sys


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


def install() -> None:
    if sys.platform.startswith("linux") and not any(isinstance(f, TritonGuard) for f in sys.meta_path):
        sys.meta_path.insert(0, TritonGuard())


install()
