"""Loading a rule set: a directory of YAML files, validated and versioned by content hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rules.schema import (
    Confirm,
    DeadlineRule,
    Duplicates,
    Emergency,
    Escalation,
    HandlingRule,
    LegalProcessRule,
    RaiseRule,
    RoutingRule,
    RuleFile,
    SelfClosing,
    Triage,
)

DEFAULT_DIR = Path(__file__).with_name("default")
SINGLE = ("self_closing", "triage", "escalation", "duplicates", "emergency", "confirm")


class RuleSetError(ValueError):
    """A rule set that cannot be loaded; ``problems`` holds one precise message each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid rule set:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class RuleSet:
    """A loaded rule set. Rules of each table are kept strongest first."""

    version: str
    path: str
    files: tuple[str, ...]
    routing: tuple[RoutingRule, ...]
    raises: tuple[RaiseRule, ...]
    deadlines: tuple[DeadlineRule, ...]
    handling: dict[str, str]
    self_closing: SelfClosing
    triage: Triage
    escalation: Escalation
    duplicates: Duplicates
    origin: dict[str, str] = field(default_factory=dict)  # rule id -> file name
    handling_rules: tuple[HandlingRule, ...] = ()
    safety: frozenset[str] = frozenset()  # type codes whose limits protect life and property
    emergency: Emergency | None = None  # transfers to 110/119/120 (none: nothing is)
    legal_processes: tuple[LegalProcessRule, ...] = ()  # staged legal process per type
    confirm: Confirm = field(default_factory=Confirm)  # a person checks guessed types

    def rule_ids(self) -> list[str]:
        return [r.id for r in (*self.handling_rules, *self.routing, *self.raises,
                               *self.deadlines, *self.legal_processes)]


def _version(files: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return "sha256:" + h.hexdigest()[:12]


def _where(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """'routing[3] (id route.x).match.zones' from a pydantic error location."""
    parts: list[str] = []
    node: Any = data
    for p in loc:
        if isinstance(p, int):
            rid = node[p].get("id") if isinstance(node, list) and isinstance(
                node[p] if p < len(node) else None, dict) else None
            parts[-1] += f"[{p}]" + (f" (id {rid})" if rid else "")
        else:
            parts.append(str(p))
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts)



def _parse_files(files: list[Path], problems: list[str]) -> list[tuple[str, RuleFile]]:
    """Each rule file's name and validated content; what is wrong goes to ``problems``."""
    parsed: list[tuple[str, RuleFile]] = []
    for f in files:
        try:
            data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            problems.append(f"{f.name}: not valid YAML: {e}")
            continue
        if not isinstance(data, dict):
            problems.append(f"{f.name}: top level must be a mapping of sections")
            continue
        try:
            parsed.append((f.name, RuleFile.model_validate(data)))
        except ValidationError as e:
            for err in e.errors():
                problems.append(f"{f.name}: {_where(err['loc'], data)}: {err['msg']}")
    return parsed


def _take_singles(name: str, rf: RuleFile, singles: dict[str, Any], origin: dict[str, str],
                  problems: list[str]) -> None:
    """The one-per-rule-set sections ``rf`` gives; one given twice is a problem."""
    for key in SINGLE:
        value = getattr(rf, key)
        if value is None:
            continue
        if key in singles:
            problems.append(f"{name}: section {key!r} is already given in "
                            f"{origin[key]}; give it in one file only")
        singles[key], origin[key] = value, name

def load_ruleset(path: str | Path | None = None) -> RuleSet:
    """Load and validate the rule set in ``path`` (a directory of YAML files, or one file);
    ``None`` loads the shipped default. Raises :class:`RuleSetError` listing every problem."""
    root = Path(path) if path is not None else DEFAULT_DIR
    if not root.exists():
        raise RuleSetError([f"{root}: no such rule file or directory"])
    root, files = ruleset_files(root)
    if not files:
        raise RuleSetError([f"{root}: no *.yaml rule files"])
    problems: list[str] = []
    parsed = _parse_files(files, problems)
    singles: dict[str, Any] = {}
    origin: dict[str, str] = {}
    handling: dict[str, str] = {}
    routing: list[RoutingRule] = []
    raises: list[RaiseRule] = []
    deadlines: list[DeadlineRule] = []
    handling_rules: list[HandlingRule] = []
    legal: list[LegalProcessRule] = []
    safety: set[str] = set()
    for name, rf in parsed:
        safety.update(rf.safety or [])
        _take_singles(name, rf, singles, origin, problems)
        for code, cls in rf.handling.items():
            if code in handling and handling[code] != cls:
                problems.append(f"{name}: handling.{code}: {cls!r} contradicts "
                                f"{handling[code]!r} given earlier")
            handling[code] = cls
        tables: tuple[tuple[list[Any], list[Any]], ...] = (
            (routing, rf.routing), (raises, rf.raise_), (deadlines, rf.deadlines),
            (handling_rules, rf.handling_rules), (legal, rf.legal_process))
        for table, rules in tables:
            for r in rules:
                if r.id in origin:
                    problems.append(f"{name}: rule id {r.id!r} is already used in "
                                    f"{origin[r.id]}; rule ids must be unique")
                origin[r.id] = name
                table.append(r)
    if problems:
        raise RuleSetError(problems)
    return RuleSet(
        version=_version(files, root),
        path=str(root),
        files=tuple(f.name for f in files),
        routing=tuple(sorted(routing, key=lambda r: r.sort_key)),
        raises=tuple(sorted(raises, key=lambda r: r.sort_key)),
        deadlines=tuple(sorted(deadlines, key=lambda r: r.sort_key)),
        handling=handling,
        self_closing=singles.get("self_closing") or SelfClosing(),
        triage=singles.get("triage") or Triage(),
        escalation=singles.get("escalation") or Escalation(),
        duplicates=singles.get("duplicates") or Duplicates(),
        origin=origin,
        handling_rules=tuple(sorted(handling_rules, key=lambda r: r.sort_key)),
        safety=frozenset(safety),
        emergency=singles.get("emergency"),
        legal_processes=tuple(sorted(legal, key=lambda r: r.sort_key)),
        confirm=singles.get("confirm") or Confirm(),
    )


def ruleset_files(path: str | Path | None = None) -> tuple[Path, list[Path]]:
    """The root directory and the rule files a rule set at ``path`` consists of."""
    root = Path(path) if path is not None else DEFAULT_DIR
    if root.is_file():
        return root.parent, [root]
    return root, sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml"))


def current_version(path: str | Path | None = None) -> str:
    """The content hash the files at ``path`` have now (cheap: no parsing)."""
    root, files = ruleset_files(path)
    return _version(files, root)


def reload_if_changed(ruleset: RuleSet) -> RuleSet | None:
    """A freshly loaded rule set if the files of ``ruleset`` changed, else ``None``.
    Raises :class:`RuleSetError` if the changed files are invalid (keep the old set then)."""
    if current_version(ruleset.path) == ruleset.version:
        return None
    return load_ruleset(ruleset.path)
