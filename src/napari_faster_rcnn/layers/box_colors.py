"""The classes' colours on box layers: a palette whose every colour reads on light and dark images
alike (WCAG contrast at least 3:1 against white and black), the colours generated past it at the
palette's luminance, their RGBA arrays per box, and the label text drawn in them.

:mod:`.conventions` gives each box layer its colours from here; the labeling session, the anchor
view and the prediction layers take the same. It imports napari (the text's colour encoding) but
not Qt.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
import pandas as pd

# Saturated colours of middle luminance: each contrasts at least 3.3:1 with both white
# and black (WCAG's ratio), so the labels drawn in them read on light and dark images
# alike (napari's text has no outline or background to help).
PALETTE = (
    "#e06a00",  # orange
    "#2b7fff",  # blue
    "#1f9a2a",  # green
    "#e3262b",  # red
    "#a259f5",  # purple
    "#b08400",  # ochre
    "#0a98a6",  # teal
    "#e23d9f",  # pink
    "#6a980e",  # olive
    "#b3703c",  # brown
)

#: the relative luminance the generated class colours (after the palette) are given
TEXT_LUMINANCE = 0.2


def relative_luminance(color: str) -> float:
    """WCAG relative luminance of ``"#rrggbb"`` (0 black, 1 white)."""
    channels = hex_to_rgba(color)[:3]
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def contrast_ratio(first: str, second: str) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""
    high, low = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def class_color(position: int) -> str:
    """The default colour of the ``position``-th class (0-based), stable across sessions."""
    if position < len(PALETTE):
        return PALETTE[position]
    hue = (position * 0.618033988749895) % 1.0  # golden-ratio steps keep new hues apart
    saturation = 0.85
    while relative_luminance(_hsv_hex(hue, saturation, 1.0)) < TEXT_LUMINANCE:
        saturation -= 0.05  # deep blues are too dark even at full brightness: paler, then
    low, high = 0.0, 1.0
    for _ in range(20):  # the brightness that gives the hue the luminance of the palette
        value = (low + high) / 2
        if relative_luminance(_hsv_hex(hue, saturation, value)) < TEXT_LUMINANCE:
            low = value
        else:
            high = value
    return _hsv_hex(hue, saturation, high)


def _hsv_hex(hue: float, saturation: float, value: float) -> str:
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def class_colors(classes: Sequence[str], existing: dict | None = None) -> dict[str, str]:
    """Colours for ``classes``: those in ``existing`` are kept, new ones get palette colours."""
    colors = {}
    existing = existing or {}
    for position, name in enumerate(classes):
        colors[name] = existing.get(name, class_color(position))
    return colors


def hex_to_rgba(color: str) -> np.ndarray:
    color = color.lstrip("#")
    return np.array([int(color[i : i + 2], 16) / 255 for i in (0, 2, 4)] + [1.0])


def edge_colors(labels: Sequence[str], colors: dict[str, str]) -> np.ndarray:
    """An ``(N, 4)`` RGBA array with each label's class colour (white for unknown)."""
    if len(labels) == 0:
        return np.zeros((0, 4))
    names = list(colors)
    table = np.array([hex_to_rgba(colors[name]) for name in names] + [np.ones(4)])
    # one lookup for all labels (100,000 boxes): an unknown label's code is -1, the white last row
    codes = pd.Index(names).get_indexer(np.asarray(labels, dtype=object))
    return table[codes]


def text_properties(colors: dict[str, str], predictions: bool, size: int = 9) -> dict:
    """The Shapes ``text`` argument: the label (and score) above each box in its class colour."""
    from napari.layers.utils.color_encoding import NominalColorEncoding
    from napari.utils.colormaps.categorical_colormap import CategoricalColormap

    colormap = CategoricalColormap(
        colormap={name: hex_to_rgba(value) for name, value in colors.items()},
        fallback_color=np.ones(4),
    )
    return {
        "string": "{label} {score:.2f}" if predictions else "{label}",
        "size": size,
        "color": NominalColorEncoding(feature="label", colormap=colormap, fallback=np.ones(4)),
        "anchor": "upper_left",
    }
