"""Bearer tokens → principals (role and scope), and the permission rules of the HTTP API.

Pure: no HTTP, no environment (the edge passes its configuration to :func:`load_registry`).
Tokens come from a YAML/JSON file (``GRID_TOKENS_FILE``) or the configuration
(``GRID_TOKENS``, JSON); in production mode (``GRID_MODE=production``) there are
no default tokens, in the embedded/demo mode (default) a documented demo set
(:func:`demo_tokens`) is used when none are configured.

Token file format (YAML or JSON)::

    tokens:
      - {token: s3cret-1, name: sup-0007, role: supervisor, patrol_areas: [310110012-P14]}
      - {token_sha256: <hex>, name: roads-desk, role: department, department: roads}
      - {token: s3cret-7, name: anju-pm, role: department, department: property_management,
         unit: 310110.property_management.01}      # a unit: only its own work orders
      - {token: s3cret-3, name: yangpu-cc, role: command_center, districts: ["310110"]}
      - {token: s3cret-4, name: city-cc, role: command_center}            # no scope = city
      - {token: s3cret-5, name: wall, role: viewer, districts: ["310110"]}
      - {token: s3cret-6, name: hotline, role: integration, source: hotline_12345}

Roles: ``supervisor`` reports, self-disposes and verifies in their patrol areas (or
streets/districts); ``department`` acts only on cases whose work order is with it;
a department token with a ``unit`` (registry unit id: a compound's property company, a
street's housing office) acts and reads only where that unit holds a work order;
``command_center`` files, rejects, dispatches, grants/denies extensions, supervises, closes
and classifies in its districts (or the city); ``viewer`` reads; ``integration`` (12345
hotline, citizen apps) submits reports with a fixed ``source``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from grid.lifecycle import RULES
from grid.models import Action, Case, Placement, Role, Source

ApiRole = Literal["supervisor", "department", "command_center", "viewer", "integration"]
ROLES: tuple[str, ...] = ("supervisor", "department", "command_center", "viewer", "integration")
SOURCES: tuple[str, ...] = get_args(Source)  # a report's sources (grid.models.Source)

# which API role may ask for which action (the lifecycle then checks the case's state)
# the lifecycle role a principal's commands carry (a hotline integration calls back)
COMMAND_ROLE: dict[str, Role] = {"supervisor": "supervisor", "department": "department",
                                 "command_center": "command_center", "integration": "hotline"}
# what no principal asks for over the API: the engine merges duplicates itself
ENGINE_ACTIONS = frozenset({Action.MERGE})
# principal role -> the actions it may ask for: derived from the lifecycle's own rules table
# (grid.lifecycle.RULES: who may do what), through the role its commands carry
ACTIONS_BY_ROLE: dict[str, frozenset[Action]] = {
    role: frozenset(a for a, (roles, _states) in RULES.items()
                    if COMMAND_ROLE.get(role) in roles and a not in ENGINE_ACTIONS)
    for role in ROLES
}
REPORTING_ROLES = frozenset({"supervisor", "integration"})

DEMO_DISTRICT = "310110"  # Yangpu, the shipped demo district


class AuthError(ValueError):
    """A token configuration that cannot be used (names the entry and the problem)."""


class Forbidden(Exception):
    """The principal may not do this (HTTP 403); the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, an actor name and a scope.

    Scope: a place is covered when it lies in one of ``districts``, ``streets`` or
    ``patrol_areas``; all three empty means the whole city.
    """

    name: str
    role: ApiRole
    districts: frozenset[str] = frozenset()
    streets: frozenset[str] = frozenset()
    patrol_areas: frozenset[str] = frozenset()
    department: str | None = None
    source: Source = "supervisor"
    unit: str | None = None  # a department's unit (registry id): scope at unit level

    @property
    def city_wide(self) -> bool:
        return not (self.districts or self.streets or self.patrol_areas)

    @property
    def actor(self) -> str:
        """The ``actor`` of the commands this principal sends (departments act by id)."""
        if self.role == "department":
            return self.unit or self.department or self.name
        return self.name

    @property
    def command_role(self) -> Role | None:
        """The lifecycle role of this principal's commands (``None``: it sends none)."""
        return COMMAND_ROLE.get(self.role)

    def holds(self, department: str | None, holders: Iterable[str] = ()) -> bool:
        """Whether this department principal holds a work order on a case led by
        ``department`` whose work orders are held by ``holders`` (departments and units):
        a unit token only by its unit, a department token by its department."""
        if self.unit:
            return self.unit in set(holders)
        return department == self.department or self.department in set(holders)

    def covers(self, place: Placement | Mapping[str, Any] | None) -> bool:
        """Whether ``place`` (Placement, or dict with district/street/patrol_area) is in scope."""
        if self.city_wide:
            return True
        if place is None:
            return False
        get = place.get if isinstance(place, Mapping) else lambda k: getattr(place, k, None)
        return (get("district") in self.districts or get("street") in self.streets
                or get("patrol_area") in self.patrol_areas)

    def scope_text(self) -> str:
        parts = [f"{k} {', '.join(sorted(v))}" for k, v in (
            ("districts", self.districts), ("streets", self.streets),
            ("patrol areas", self.patrol_areas)) if v]
        return "; ".join(parts) or "the whole city"

    def public(self) -> dict[str, Any]:
        """What ``GET /api/v1/me`` shows (never the token)."""
        return {"name": self.name, "role": self.role, "department": self.department,
                "unit": self.unit,
                "source": self.source if self.role in REPORTING_ROLES else None,
                "districts": sorted(self.districts), "streets": sorted(self.streets),
                "patrol_areas": sorted(self.patrol_areas), "city_wide": self.city_wide,
                "actions": sorted(a.value for a in ACTIONS_BY_ROLE[self.role])}


# --- permission rules ------------------------------------------------------------------------

def check_report(p: Principal, place: Placement | None) -> None:
    """May ``p`` submit a report located at ``place``? Raises :class:`Forbidden`."""
    if p.role not in REPORTING_ROLES:
        raise Forbidden(f"role {p.role!r} may not submit reports "
                        f"(allowed: {', '.join(sorted(REPORTING_ROLES))})")
    if p.role == "supervisor" and not p.covers(place):
        where = _where(place)
        raise Forbidden(f"supervisor {p.name!r} may report only in {p.scope_text()}; "
                        f"this location is {where}")


def holders_of(case: Case) -> frozenset[str]:
    """Departments and units holding a work order on ``case``: the lead and every assisting
    department (协办), each with its unit."""
    out = {case.department, case.unit}
    for part in case.assisting:
        out |= {part.department, part.unit}
    return frozenset(x for x in out if x)


def check_read(p: Principal, place: Placement | Mapping[str, Any] | None,
               department: str | None = None, reporters: Iterable[str] = (),
               holders: Iterable[str] = ()) -> None:
    """May ``p`` read a case at ``place`` handled by ``department`` (work orders held by
    ``holders``, see :func:`holders_of`) and reported by ``reporters``? An integration
    (hotline, citizen app) reads only cases it reported; a unit only cases it holds."""
    if p.role == "integration":
        if p.name not in set(reporters):
            raise Forbidden(f"integration {p.name!r} reads only the cases it reported")
        return
    if p.role == "department" and p.unit:
        if not p.holds(department, holders):
            raise Forbidden(f"unit {p.unit!r} reads only the cases it holds a work order on")
        return
    if p.role == "department" and p.city_wide:
        if not p.holds(department, holders):
            raise Forbidden(f"department {p.department!r} reads only its own cases "
                            f"(this one is with {department!r})")
        return
    if not p.covers(place):
        raise Forbidden(f"{p.name!r} may read only cases in {p.scope_text()}; "
                        f"this case is in {_where(place)}")


def check_action(p: Principal, action: Action, place: Placement | None,
                 department: str | None, holders: Iterable[str] = (),
                 reporters: Iterable[str] = ()) -> None:
    """May ``p`` ask for ``action`` on a case at ``place`` with its lead work order at
    ``department`` (all work orders held by ``holders``)? A hotline calls back only the
    cases it reported.

    Whether the case's *state* allows the action is the lifecycle's business (409).
    """
    allowed = ACTIONS_BY_ROLE[p.role]
    if action not in allowed:
        names = ", ".join(sorted(a.value for a in allowed)) or "none (read-only)"
        raise Forbidden(f"role {p.role!r} may not {action.value!r}; its actions: {names}")
    if p.role == "integration":
        if place is not None and p.name not in set(reporters):
            raise Forbidden(f"integration {p.name!r} calls back only the cases it reported")
        return
    if p.role == "department":
        if department is not None and not p.holds(department, holders):
            who = f"unit {p.unit!r}" if p.unit else f"department {p.department!r}"
            raise Forbidden(f"{who} may act only on its own work orders; "
                            f"this case is with {department!r}")
        return
    if not p.covers(place):
        raise Forbidden(f"{p.name!r} may act only in {p.scope_text()}; "
                        f"this case is in {_where(place)}")


def check_work_orders(p: Principal, department: str) -> None:
    """May ``p`` list the open work orders of ``department``? (A unit token then sees only
    its unit's: :func:`visible_work_orders`.)"""
    if p.role == "department" and department != p.department:
        raise Forbidden(f"department {p.department!r} may list only its own work orders")
    if p.role in ("supervisor", "integration"):
        raise Forbidden(f"role {p.role!r} may not list work orders")


def visible_work_orders(p: Principal, orders: Iterable[Any]) -> list[Any]:
    """The work orders (models or dicts with ``department``/``unit``) ``p`` may see: a unit
    token only its unit's, a department token its department's, others all of them."""
    def get(o: Any, k: str) -> Any:
        return o.get(k) if isinstance(o, Mapping) else getattr(o, k, None)

    if p.role != "department":
        return list(orders)
    if p.unit:
        return [o for o in orders if get(o, "unit") == p.unit]
    return [o for o in orders if get(o, "department") == p.department]


def _where(place: Placement | Mapping[str, Any] | None) -> str:
    if place is None:
        return "outside the covered area"
    get = place.get if isinstance(place, Mapping) else lambda k: getattr(place, k, None)
    bits = [f"{k} {get(k)}" for k in ("district", "street", "patrol_area") if get(k)]
    return ", ".join(bits) or "unknown"


# --- token registry ---------------------------------------------------------------------------

def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class TokenRegistry:
    """Token digests → principals. ``lookup`` compares digests in constant time."""

    by_digest: dict[str, Principal] = field(default_factory=dict)
    origin: str = "none"  # "file:<path>", "env", "demo" or "none"
    demo: dict[str, Principal] = field(default_factory=dict)  # plaintext, demo mode only

    def lookup(self, token: str | None) -> Principal | None:
        if not token:
            return None
        d = _digest(token)
        for known, principal in self.by_digest.items():
            if hmac.compare_digest(known, d):
                return principal
        return None

    def __len__(self) -> int:
        return len(self.by_digest)


def parse_entries(entries: Iterable[Mapping[str, Any]], origin: str) -> TokenRegistry:
    """Validate token entries (see module docstring) into a registry; :class:`AuthError` names
    the bad entry."""
    reg = TokenRegistry(origin=origin)
    for i, e in enumerate(entries):
        where = f"{origin}: tokens[{i}]"
        if not isinstance(e, Mapping):
            raise AuthError(f"{where}: expected a mapping, got {type(e).__name__}")
        unknown = set(e) - {"token", "token_sha256", "name", "role", "districts", "streets",
                            "patrol_areas", "department", "source", "unit"}
        if unknown:
            raise AuthError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        role = e.get("role")
        if role not in ROLES:
            raise AuthError(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}")
        token, sha = e.get("token"), e.get("token_sha256")
        if bool(token) == bool(sha):
            raise AuthError(f"{where}: give exactly one of token, token_sha256")
        if token is not None and (not isinstance(token, str) or len(token) < 8):
            raise AuthError(f"{where}: token must be a string of at least 8 characters")
        name = str(e.get("name") or f"{role}-{i}")[:64]
        scope = {k: _codes(e.get(k), f"{where}.{k}") for k in
                 ("districts", "streets", "patrol_areas")}
        dept = e.get("department")
        if role == "department" and not dept:
            raise AuthError(f"{where}: a department token needs `department` (its id)")
        if role == "supervisor" and not any(scope.values()):
            raise AuthError(f"{where}: a supervisor token needs patrol_areas, streets or "
                            "districts (its scope)")
        source: Any = e.get("source") or ("supervisor" if role == "supervisor" else "citizen")
        if source not in SOURCES:
            raise AuthError(f"{where}: source must be one of {', '.join(SOURCES)}")
        digest = str(sha).lower() if sha else _digest(str(token))
        if digest in reg.by_digest:
            raise AuthError(f"{where}: the same token is listed twice")
        unit = e.get("unit")
        if unit is not None and (role != "department" or not isinstance(unit, str)):
            raise AuthError(f"{where}: unit (a registry unit id) is for department tokens")
        reg.by_digest[digest] = Principal(name=name, role=role, department=dept, source=source,
                                          unit=unit, **scope)
    return reg


def _codes(v: Any, where: str) -> frozenset[str]:
    if v is None:
        return frozenset()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str | int) for x in v):
        raise AuthError(f"{where}: expected a list of codes")
    return frozenset(str(x) for x in v)


def demo_tokens(departments: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """The documented demo tokens (embedded mode only): token → entry."""
    out: dict[str, dict[str, Any]] = {
        "demo-supervisor": dict(name="sup-0042", role="supervisor", districts=[DEMO_DISTRICT]),
        "demo-supervisor-p14": dict(name="sup-p14", role="supervisor",
                                    patrol_areas=["310110012-P14"]),
        "demo-command-center": dict(name="yangpu-cc", role="command_center",
                                    districts=[DEMO_DISTRICT]),
        "demo-city": dict(name="city-cc", role="command_center"),
        "demo-viewer": dict(name="viewer", role="viewer"),
        "demo-hotline": dict(name="hotline-12345", role="integration", source="hotline_12345"),
        "demo-hotline-962121": dict(name="hotline-962121", role="integration",
                                    source="hotline_962121"),
        "demo-unit-pm01": dict(name="anju-pm", role="department",
                               department="property_management",
                               unit=f"{DEMO_DISTRICT}.property_management.01"),
        "demo-citizen-app": dict(name="citizen-app", role="integration", source="citizen"),
    }
    for dept in departments:
        out[f"demo-dept-{dept}"] = dict(name=dept, role="department", department=dept)
    return out


def load_registry(env: Mapping[str, str], departments: Iterable[str] = ()) -> TokenRegistry:
    """The token registry of a configuration ``env`` (the edge passes its settings'
    ``token_config()``, streams.settings):
    ``GRID_TOKENS_FILE``, else ``GRID_TOKENS`` (JSON), else (not in production mode) the demo
    tokens. Production without tokens → empty registry (every request is 401)."""
    production = env.get("GRID_MODE", "embedded").lower() == "production"
    path = env.get("GRID_TOKENS_FILE")
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise AuthError(f"GRID_TOKENS_FILE {path}: {err}") from err
        return parse_entries(_entries(data, path), f"file:{path}")
    raw = env.get("GRID_TOKENS")
    if raw:
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise AuthError(f"GRID_TOKENS is not JSON: {err}") from err
        return parse_entries(_entries(data, "GRID_TOKENS"), "env")
    if production:
        return TokenRegistry(origin="none")
    demo = demo_tokens(departments)
    reg = parse_entries(({"token": t, **e} for t, e in demo.items()), "demo")
    reg.demo = {t: reg.lookup(t) for t in demo}  # type: ignore[misc]
    return reg


def _entries(data: Any, origin: str) -> list[Any]:
    if isinstance(data, Mapping) and "tokens" in data:
        data = data["tokens"]
    if not isinstance(data, list):
        raise AuthError(f"{origin}: expected a list of tokens (or {{tokens: [...]}})")
    return data


def bearer_token(authorization: str | None, api_key: str | None = None) -> str | None:
    """The token from an ``Authorization: Bearer …`` header, else an Open311 ``api_key``."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return api_key or None


def describe(reg: TokenRegistry) -> str:
    """A table of the demo tokens (printed by ``grid tokens`` / ``grid up``)."""
    if not reg.demo:
        return f"tokens: {len(reg)} configured ({reg.origin}); no demo tokens"
    lines = ["demo tokens (embedded mode; set GRID_MODE=production to disable):"]
    for token, p in reg.demo.items():
        lines.append(f"  {token:<32} {p.role:<15} {p.department or p.scope_text()}")
    return "\n".join(lines)
