"""Names people read beside the codes the engine keys on: types and departments (from the
taxonomy), districts, streets and communities (from the geodata layers).

``Names.load()`` reads only the small named layers (districts, streets, communities), not
the cells; an unknown code is shown as itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

NAMED_LAYERS = ("districts", "streets", "communities")


class Names:
    """``type``, ``department`` and ``place`` give "name (code)"; ``*_name`` the bare name
    or ``None``."""

    def __init__(self, taxonomy: Any, places: Mapping[str, str]) -> None:
        """``taxonomy`` None: places only (types and departments show their codes)."""
        self.taxonomy = taxonomy
        self.places = dict(places)

    @classmethod
    def load(cls, geodata: str | Path | None = None, taxonomy: Any = None) -> Names:
        """Names from ``taxonomy`` (default: the shipped one) and the named layers of
        ``geodata`` (default: the shipped set; the edge passes ``$GRID_GEODATA``)."""
        from geodata.locator import DATA_DIR
        from geodata.schema import layer_path, read_layer
        from grid.taxonomy import default_taxonomy

        d = Path(geodata or DATA_DIR)
        places: dict[str, str] = {}
        for layer in NAMED_LAYERS:
            p = layer_path(d, layer) if d.is_dir() else None
            if p is None:
                continue
            gdf = read_layer(p, layer)
            if {"code", "name"} <= set(gdf.columns):
                places.update((str(c), str(n)) for c, n in zip(gdf["code"], gdf["name"],
                                                                strict=True))
        return cls(taxonomy or default_taxonomy(), places)

    @classmethod
    def of_locator(cls, locator: Any, taxonomy: Any = None) -> Names:
        """Names from an already loaded :class:`~geodata.locator.Locator`."""
        places = dict(locator.district_names)
        for layer in NAMED_LAYERS[1:]:
            gdf = locator.layers.get(layer)
            if gdf is not None and {"code", "name"} <= set(gdf.columns):
                places.update((str(c), str(n)) for c, n in zip(gdf["code"], gdf["name"],
                                                                strict=True))
        return cls(taxonomy, places)

    def type_name(self, code: str | None) -> str | None:
        t = self.taxonomy.types.get(code) if code and self.taxonomy else None
        return f"{t.name_zh} {t.name_en}" if t else None

    def department_name(self, code: str | None) -> str | None:
        d = self.taxonomy.departments.get(code) if code and self.taxonomy else None
        return f"{d.name_zh} {d.name_en}" if d else None

    def place_name(self, code: str | None) -> str | None:
        return self.places.get(code) if code else None

    @staticmethod
    def _both(name: str | None, code: str | None, missing: str) -> str:
        if not code:
            return missing
        return f"{name} ({code})" if name else code

    def type(self, code: str | None) -> str:
        """``井盖缺失/损坏 Manhole cover missing or damaged (0101)``."""
        return self._both(self.type_name(code), code, "unclassified 未分类")

    def department(self, code: str | None) -> str:
        """``供水企业 Water supply company (water)``."""
        return self._both(self.department_name(code), code, "—")

    def place(self, code: str | None) -> str:
        """``杨浦区街镇10 (310110010)`` for a district, street or community code."""
        return self._both(self.place_name(code), code, "—")
