"""Histograms of :class:`~.measures.DatasetStatistics`, drawn onto a matplotlib Figure.

The dock widget and the command line share this drawing: the widget passes the
Figure behind its Qt canvas, the command line a plain one it saves as PNG. Only
``matplotlib.figure.Figure`` is used, never pyplot, so no GUI backend is loaded
here (the core runs on servers).

Each histogram's axes carries its quantity as ``gid`` (``"box_area"``, or
``"box_area:after"`` for the transformed values when both are drawn), so a
caller can find it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from napari_faster_rcnn.core.statistics.measures import BOX_QUANTITIES, LABELS, QUANTITIES, DatasetStatistics

#: background, text, frame and single-bar colours of the two themes (dark: napari's)
THEMES = {
    "light": {"background": "#ffffff", "text": "#222222", "frame": "#888888", "bars": "#1f77b4"},
    "dark": {"background": "#262930", "text": "#f0f1f2", "frame": "#8c8c8c", "bars": "#1f9bff"},
}
# the first class colours of the viewer (_layers.PALETTE), so plots made here match its layers
_FALLBACK_COLORS = ("#e06a00", "#2b7fff", "#1f9a2a", "#e3262b", "#a259f5", "#b08400", "#0a98a6", "#e23d9f")


def histogram_edges(values: np.ndarray, integer: bool, bins: int = 30) -> np.ndarray:
    """Bin edges for ``values``: one bin per integer over a short integer range, else ``bins`` equal bins."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.array([0.0, 1.0])
    low, high = float(values.min()), float(values.max())
    if integer and high - low < bins:
        return np.arange(low - 0.5, high + 1.5)
    if high == low:
        return np.array([low - 0.5, high + 0.5])
    count = int(np.clip(np.sqrt(len(values)) * 2, 8, bins))
    return np.linspace(low, high, count + 1)


def plot_statistics(
    stats: DatasetStatistics,
    figure=None,
    per_class: bool = True,
    transformed: bool | str = False,
    classes: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
    theme: str = "light",
):
    """Draw the six histograms (image height and width, boxes per image, box width,
    height and area) of ``stats`` onto ``figure``.

    Parameters
    ----------
    figure : matplotlib.figure.Figure, optional
        Cleared and drawn on; a new Figure when None.
    per_class
        Stack the box histograms by class (one colour each, with a legend).
    transformed
        False: the images and boxes as stored; True: after the model's
        transform; ``"both"``: two columns, as stored and after.
    classes
        Only these classes' boxes (None: all).
    colors
        Class name -> colour (a layer's class colours); others get defaults.
    theme
        ``"light"`` (for files) or ``"dark"`` (napari's dark theme).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if transformed not in (False, True, "both"):
        raise ValueError(f"transformed must be False, True or 'both', got {transformed!r}")
    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r}; choose from {', '.join(THEMES)}")
    palette = THEMES[theme]
    selection = None if classes is None else list(classes)
    shown = list(stats.classes) if selection is None else selection
    stats.class_mask(shown)  # unknown names fail here, with the list of classes
    class_colors = _class_colors(stats.classes, colors or {})
    stages = [False, True] if transformed == "both" else [bool(transformed)]

    if figure is None:
        figure = Figure(figsize=(5.2 * len(stages), 7.5 if len(stages) == 1 else 15), layout="constrained")
    figure.clear()
    figure.set_facecolor(palette["background"])
    rows, columns = (3, 2) if len(stages) == 1 else (len(QUANTITIES), 2)
    for position, (quantity, stage) in enumerate(_panels(stages)):
        axes = figure.add_subplot(rows, columns, position + 1)
        axes.set_gid(quantity + (":after" if stage and len(stages) == 2 else ""))
        _histogram(axes, stats, quantity, stage, shown, selection, per_class, class_colors, palette)
        if len(stages) == 2 and position < 2:
            axes.set_title(_stage_title(stats, stage) + "\n" + axes.get_title(), color=palette["text"], fontsize=9)
    if len(stages) == 1:
        figure.suptitle(_stage_title(stats, stages[0]), color=palette["text"], fontsize=9)
    stacked = per_class and len(shown) > 1 and stats.class_mask(shown).any()
    if stacked:  # one legend for the stacked box histograms, below them, covering no bars
        handles = [Patch(color=class_colors[name]) for name in shown]
        figure.legend(handles, shown, loc="outside lower center", ncols=min(len(shown), 4), fontsize=8,
                      frameon=False, labelcolor=palette["text"])
    return figure


def _panels(stages):
    if len(stages) == 1:
        return [(quantity, stages[0]) for quantity in QUANTITIES]
    return [(quantity, stage) for quantity in QUANTITIES for stage in stages]


def _stage_title(stats: DatasetStatistics, transformed: bool) -> str:
    if transformed:
        return f"after the model's transform\nmin_size {stats.min_size}, max_size {stats.max_size}"
    return f"as stored\n{stats.images} images, {stats.boxes} boxes"


def _histogram(axes, stats, quantity, transformed, shown, selection, per_class, class_colors, palette) -> None:
    integer = quantity in ("image_height", "image_width", "boxes_per_image")
    stacked = per_class and quantity in BOX_QUANTITIES and len(shown) > 1
    if stacked:
        groups = [stats.values(quantity, transformed, name) for name in shown]
        colors = [class_colors[name] for name in shown]
        edges = histogram_edges(np.concatenate(groups) if groups else np.zeros(0), integer)
        if sum(len(g) for g in groups):
            axes.hist(groups, bins=edges, stacked=True, color=colors, label=shown)
    else:
        values = stats.values(quantity, transformed, selection)
        color = class_colors[shown[0]] if len(shown) == 1 and quantity in BOX_QUANTITIES else palette["bars"]
        if len(values):
            edges = histogram_edges(values, integer)
            unit_bins = integer and len(edges) > 2 and edges[1] - edges[0] == 1
            axes.hist(values, bins=edges, color=color, rwidth=0.85 if unit_bins else None)
            if values.min() == values.max():  # one value (all images alike): say it, not 255.5 ... 256.5
                axes.set_xticks([float(values.min())])
    axes.set_title(LABELS[quantity], color=palette["text"], fontsize=9)
    axes.set_ylabel("boxes" if quantity in BOX_QUANTITIES else "images", color=palette["text"], fontsize=8)
    if not axes.patches:
        axes.text(0.5, 0.5, "no boxes" if quantity in BOX_QUANTITIES else "no images", transform=axes.transAxes,
                  ha="center", va="center", color=palette["text"], fontsize=9)
    _style(axes, palette, integer)


def _style(axes, palette, integer: bool) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

    axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of images or boxes
    if not isinstance(axes.xaxis.get_major_locator(), FixedLocator):  # one value keeps its single tick
        # few ticks leave room for areas' long numbers in a narrow dock
        axes.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=integer))
    if max(abs(limit) for limit in axes.get_xlim()) >= 1e4:
        axes.xaxis.set_major_formatter(FuncFormatter(_short_number))
    axes.set_facecolor(palette["background"])
    axes.tick_params(colors=palette["text"], labelsize=7)
    for spine in axes.spines.values():
        spine.set_color(palette["frame"])
    axes.xaxis.get_offset_text().set_color(palette["text"])
    axes.yaxis.get_offset_text().set_color(palette["text"])


def _short_number(value: float, position=None) -> str:
    """Tick labels of an axis reaching 10,000 or more: 0, 8k, 16k, 1.5M."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    return f"{value / 1e3:g}k" if value else "0"


def _class_colors(classes: Sequence[str], colors: Mapping[str, str]) -> dict[str, str]:
    return {name: colors.get(name) or _FALLBACK_COLORS[i % len(_FALLBACK_COLORS)] for i, name in enumerate(classes)}
