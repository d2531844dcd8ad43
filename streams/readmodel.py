"""The worker's read side: the read store, and (by default) a projector feeding it.

:func:`attach_read_store` gives the worker ``read_store`` (a :class:`store.reader.ReadStore`
on ``GRID_STORE_URL``, else on a SQLite file in the worker's data directory) and, unless
``GRID_PROJECTOR=0``, ``projector``: a :class:`streams.projector.Projector` task that keeps
the store up to date and feeds the dashboard's live stream; with ``GRID_PROJECTOR=0`` a
``live_feed`` (:class:`streams.projector.LiveFeed`) feeds it instead. Nothing is replayed
into memory at start: a restarted worker resumes from the offsets stored with the rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from store.db import connect
from store.reader import ReadStore
from store.writer import StoreWriter
from streams.projector import LiveFeed, Projector


def store_of(settings: Any) -> tuple[str, bool]:
    """(URL, private): ``GRID_STORE_URL`` (shared), else ``<data_dir>/store.db`` (private)."""
    if settings.store_url:
        return settings.store_url, False
    return f"sqlite:///{Path(settings.data_dir).resolve() / 'store.db'}", True


def names_of(loc: Any, tax: Any) -> Any:
    """``names(kind, code)`` from a locator's layers and a taxonomy (for the store's rows)."""
    tables: dict[str, dict[str, str]] = {"district": dict(loc.district_names)}
    for kind, layer in (("street", "streets"), ("community", "communities")):
        gdf = loc.layers.get(layer)
        if gdf is not None and "name" in gdf.columns:
            tables[kind] = {str(c): str(n)
                            for c, n in zip(gdf["code"], gdf["name"], strict=True)}

    def names(kind: str, code: str | None) -> str | None:
        if not code:
            return None
        if kind == "type":
            t = tax.types.get(code)
            return t.name_zh if t else None
        if kind == "department":
            d = tax.departments.get(code)
            return d.name_zh if d else None
        return tables.get(kind, {}).get(code)

    return names


def category_of(tax: Any) -> Any:
    """``category_of(type_code)`` for re-typed (classified) cases."""
    def of(code: str) -> str | None:
        t = tax.types.get(code)
        return t.category if t else None

    return of


def group_of(app_id: str, url: str, private: bool) -> str:
    """The projector's consumer group: shared by every projector of a shared store; its own
    for a private store (it must see every partition)."""
    group = f"{app_id}-projector"
    return group + "-" + hashlib.sha1(url.encode()).hexdigest()[:8] if private else group


def attach_read_store(grid_app: Any) -> ReadStore:
    """Give ``grid_app`` ``read_store`` and (``settings.projector``) a ``projector`` task."""
    settings = grid_app.settings
    url, private = store_of(settings)
    engine = connect(url)
    grid_app.read_store = ReadStore(engine)
    grid_app.projector = None
    grid_app.live_feed = None
    if settings.projector:
        tax = grid_app.engine.taxonomy
        group = group_of(settings.app_id, url, private)
        writer = StoreWriter(engine, consumer=group,
                             names=names_of(grid_app.engine.locator, tax),
                             category_of=category_of(tax))
        projector = Projector(settings.broker, writer, group, private=private,
                              stuck_after=settings.stuck_seconds)
        grid_app.projector = projector

        @grid_app.app.task
        async def projector_task() -> None:
            await projector.run()
    else:  # projectors elsewhere fill the store: live events once they are stored
        feed = LiveFeed(settings.broker, grid_app.read_store.stored_offsets,
                        group_of(settings.app_id, url, private))
        grid_app.live_feed = feed

        @grid_app.app.task
        async def live_feed_task() -> None:
            await feed.run()

    return grid_app.read_store
