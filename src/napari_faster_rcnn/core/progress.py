"""Driving the progress generators of :mod:`core` to their end, for callers that want only the result.

The long jobs (statistics, conversion, training, prediction) are generators
that yield progress and *return* their result, so that a ``thread_worker`` can
show the progress; these two run one in the calling thread instead.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

Y = TypeVar("Y")
R = TypeVar("R")


def run_to_end(generator: Generator[Y, Any, R], each: Callable[[Y], object] | None = None) -> R:
    """Run ``generator`` to its end, passing each value it yields to ``each``; returns its return value."""
    while True:
        try:
            value = next(generator)
        except StopIteration as finished:
            return finished.value
        if each is not None:
            each(value)


def collect(generator: Generator[Y, Any, R]) -> tuple[list[Y], R]:
    """Every value ``generator`` yields, in order, and its return value."""
    values: list[Y] = []
    result = run_to_end(generator, values.append)
    return values, result
