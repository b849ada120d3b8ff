"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import gc
import json
import statistics
import time
import tracemalloc

#: The quadrants of a real image cut into a data set: three train, the fourth is held out.
QUADRANTS = (("train", ((0, 0), (0, 1), (1, 0))), ("test", ((1, 1),)))


def quadrants(height: int, width: int, boxes):
    """``(part, name, rows slice, columns slice, boxes)`` of each quadrant of an image of ``height x width``
    (:data:`QUADRANTS`): the xyxy ``boxes`` whose centre is inside it, in its coordinates, clipped to it."""
    height, width = height // 2, width // 2
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    for part, corners in QUADRANTS:
        for row, column in corners:
            top, left = row * height, column * width
            inside = ((centres[:, 0] >= left) & (centres[:, 0] < left + width)
                      & (centres[:, 1] >= top) & (centres[:, 1] < top + height))
            shifted = (boxes[inside] - [left, top, left, top]).clip(0, [width, height, width, height])
            yield part, f"q{row}{column}", slice(top, top + height), slice(left, left + width), shifted


def measure(function, repeat: int = 3):
    """Median wall time over ``repeat`` calls, the peak traced memory of one call, and its result."""
    times = []
    result = None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
        del result
    gc.collect()
    tracemalloc.start()
    result = function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), peak, result


def report(name: str, rows: list[tuple], summary: dict) -> None:
    width = max(len(str(r[0])) for r in rows)
    print(f"\n{name}")
    for row in rows:
        print("  " + str(row[0]).ljust(width) + "  " + "  ".join(str(c) for c in row[1:]))
    print(json.dumps({"benchmark": name, **summary}))


class Painter:
    """Let the viewer react and paint its canvas once; counts the paints to be sure."""

    def __init__(self, app, scene_canvas):
        self.app, self.scene_canvas, self.draws = app, scene_canvas, 0
        scene_canvas.events.draw.connect(self._drawn)

    def _drawn(self, event=None) -> None:
        self.draws += 1

    def __call__(self) -> None:
        before = self.draws
        self.app.processEvents()  # napari's update has asked for a paint; Qt paints now
        if self.draws == before:  # nothing was pending: paint anyway, as the baseline must
            self.scene_canvas.update()
            self.app.processEvents()
