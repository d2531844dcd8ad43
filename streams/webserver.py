"""The worker's web server: Faust's aiohttp driver without Faust's own pages.

Registered as the Faust web driver ``grid://`` (entry point group ``faust.web.drivers`` in
pyproject.toml, Faust's plugin mechanism). The engine serves its own ``/`` (the dashboard)
and has no Faust tables or agents, so Faust's placeholder index and its ``/router`` and
``/table`` views are left out.
"""

from __future__ import annotations

from typing import Any, ClassVar

from faust.web.drivers.aiohttp import Web as AiohttpWeb


class Web(AiohttpWeb):
    """aiohttp, serving only the routes the engine registers."""

    #: Faust's /router and /table views (of Faust tables: the engine has none)
    default_blueprints: ClassVar[list[tuple[str, Any]]] = []
    #: Faust's {"status": "OK"} at "/": the dashboard is there
    production_blueprints: ClassVar[list[tuple[str, Any]]] = []
