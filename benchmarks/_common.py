"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import gc
import json
import statistics
import time
import tracemalloc


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
