"""OpenMP threads that wait passively in the viewer's process.

By default torch's OpenMP threads spin on their core between parallel regions.
In napari's process the event loop needs a core too, and on a shared machine
other programs do: with spinning threads a training step in the viewer took 885
ms, waiting passively 85 ms, and napari's event loop waited up to 156 ms instead
of 56 ms (the same run, on a loaded 2-core machine; the demo command measured the
same effect headless). On an idle machine, passive waiting makes a CPU step
about 15 to 25% slower (measured headless); the viewer's responsiveness comes
first here.

Importing this module sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment
sets it (``OMP_WAIT_POLICY=ACTIVE`` restores the default) and only before torch
is loaded: OpenMP reads it once, when torch loads it. The napari-facing modules
import it (through :mod:`._layers`) before anything imports torch; the command
line does not.
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


wait_passively()
