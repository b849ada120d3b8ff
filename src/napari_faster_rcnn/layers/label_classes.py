"""The class half of a labeling session: the class list, its colours and keys, the current class.

:class:`ClassEditing` is mixed into :class:`~napari_faster_rcnn.layers.labeling.LabelingSession`; it
expects the session's ``layer``, ``store`` (a :class:`~napari_faster_rcnn.core.data.labeling.LabelStore`,
which holds the class list), ``events``, ``commit`` and ``autosave``. The list
lives in the store and is mirrored into ``layer.metadata`` with a colour for
every class; a new rectangle gets the current class through the layer's
feature defaults and its colour through ``current_edge_color``.

No Qt here.
"""

from __future__ import annotations

import numpy as np

from napari_faster_rcnn.layers import box_colors, conventions


class ClassEditing:
    """Add, rename, recolour and remove classes; pick the current one; move boxes between them."""

    @property
    def current_class(self) -> str | None:
        return self._current_class

    def set_current_class(self, name: str) -> None:
        """The class a new rectangle gets."""
        if name not in self.store.classes:
            raise ValueError(f"there is no class {name!r}")
        self._current_class = name
        self._apply_current_class()
        self.events.changed()

    def class_for_key(self, key: int) -> str | None:
        """Make the ``key``-th class (1-based) current; returns it, None if there is no such class."""
        if not 1 <= key <= len(self.store.classes):
            return None
        self.set_current_class(self.store.classes[key - 1])
        return self._current_class

    def add_class(self, name: str, color: str | None = None) -> str:
        """Add a class (and make it current); returns its name as kept."""
        self.commit()
        name = self.store.add_class(name)
        self._mirror_classes()
        if color is not None:
            self.layer.metadata[conventions.CLASS_COLORS][name] = _hex(color)
        self._current_class = name
        self._classes_changed()
        return name

    def rename_class(self, old: str, new: str) -> str:
        """Rename a class and every box of it, in every image."""
        self.commit()
        new = self.store.rename_class(old, new)
        colors = self.layer.metadata[conventions.CLASS_COLORS]
        colors[new] = colors.pop(old, box_colors.class_color(self.store.classes.index(new)))
        if self._current_class == old:
            self._current_class = new
        self._classes_changed()
        return new

    def recolor_class(self, name: str, color: str) -> None:
        """Give a class another colour (its boxes and labels follow)."""
        if name not in self.store.classes:
            raise ValueError(f"there is no class {name!r}")
        self.layer.metadata[conventions.CLASS_COLORS][name] = _hex(color)
        self._update_text_colors()
        self.refresh()
        self._apply_current_class()
        self.events.changed()

    def remove_class(self, name: str) -> bool:
        """Remove a class, deleting its boxes from every image; a class with boxes is removed
        only if :attr:`confirm_remove_class` agrees. Returns whether it was removed."""
        if name not in self.store.classes:
            raise ValueError(f"there is no class {name!r}")
        count = self.total_counts().get(name, 0)
        if count and not self.confirm_remove_class(name, count):
            return False
        self.commit()
        self.store.remove_class(name)
        self.layer.metadata[conventions.CLASS_COLORS].pop(name, None)
        if self._current_class == name:
            self._current_class = self.store.classes[0] if self.store.classes else None
        self._classes_changed()
        return True

    def move_selected_to_class(self, name: str) -> int:
        """Give the boxes selected on screen class ``name``; returns how many."""
        if name not in self.store.classes:
            raise ValueError(f"there is no class {name!r}")
        selected = sorted(self.layer.selected_data)
        if not selected:
            return 0
        features = self.layer.features.copy()
        features.iloc[selected, features.columns.get_loc("label")] = name
        colors = np.array(self.layer.edge_color, copy=True)
        colors[selected] = box_colors.hex_to_rgba(self.layer.metadata[conventions.CLASS_COLORS][name])
        defaults = self.layer.feature_defaults.copy()
        self.layer.features = features
        self.layer.feature_defaults = defaults
        self.layer.edge_color = colors
        self._apply_current_class()
        self.events.changed()
        return len(selected)

    def _classes_changed(self) -> None:
        self._mirror_classes()
        self._update_text_colors()
        self.refresh()  # the image on screen, renamed or without the removed class
        self._apply_current_class()
        if self.autosave:
            self._save(sorted(self.store.dirty))
        self.events.changed()

    def _mirror_classes(self) -> None:
        """The store's class list into the layer metadata, with a colour for every class."""
        metadata = self.layer.metadata
        old = dict(metadata.get(conventions.CLASS_COLORS) or {})
        colors = {name: old[name] for name in self.store.classes if name in old}
        for name in self.store.classes:
            if name not in colors:
                colors[name] = _unused_color(colors.values())
        metadata[conventions.CLASSES] = list(self.store.classes)
        metadata[conventions.CLASS_COLORS] = colors

    def _update_text_colors(self) -> None:
        self.layer.text.color = box_colors.text_properties(self.layer.metadata[conventions.CLASS_COLORS], predictions=False)["color"]

    def _apply_current_class(self) -> None:
        name = self._current_class
        if name is None:
            return
        defaults = self.layer.feature_defaults
        if "label" not in defaults or defaults["label"].iloc[0] != name:
            self.layer.feature_defaults = {"label": name}
        self._keep_class_color()

    def _keep_class_color(self, event=None) -> None:
        """New rectangles take the current class's colour, also after napari set the colour of
        a box the person selected."""
        name = self._current_class
        if name is None or self.closed:
            return
        wanted = box_colors.hex_to_rgba(self.layer.metadata[conventions.CLASS_COLORS][name])
        if not np.allclose(self.layer._current_edge_color, wanted, atol=1e-3):
            with self.layer.block_update_properties():  # not onto the selected boxes
                self.layer.current_edge_color = wanted


def _hex(color) -> str:
    from napari.utils.colormaps.standardize_color import transform_color

    red, green, blue = (np.clip(transform_color(color)[0][:3], 0, 1) * 255).round().astype(int)
    return f"#{red:02x}{green:02x}{blue:02x}"


def _unused_color(used) -> str:
    used = set(used)
    position = 0
    while box_colors.class_color(position) in used:
        position += 1
    return box_colors.class_color(position)
