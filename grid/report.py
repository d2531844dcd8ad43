"""Evaluation report (考核评价): per-department and per-street figures for a period, from the
case event log. Pure: events in, figures out (see :mod:`grid.projection` for definitions).

The period is a range of Shanghai calendar days, both ends inclusive: ``--from 2026-03-01
--to 2026-03-31`` is ``[03-01 00:00, 04-01 00:00)`` +08:00. The figures are as of the end of
the period: events after it are ignored, so a report for a closed period never changes.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import orjson

from grid.evaluation import RoleFigures, role_figures
from grid.projection import TZ, Figures, Projection

COLUMNS = ("dispatched", "closed", "closed_on_time", "disposed", "reworked", "extended", "open",
           "overdue", "closure_rate", "on_time_rate", "rework_rate", "extension_rate")


def period(start: date, end: date) -> tuple[datetime, datetime]:
    """``[start 00:00, end + 1 day 00:00)`` in Shanghai time."""
    if end < start:
        raise ValueError(f"period ends ({end}) before it starts ({start})")
    return (datetime.combine(start, time(), TZ),
            datetime.combine(end + timedelta(days=1), time(), TZ))


def read_jsonl(lines: Iterable[bytes | str]) -> Iterator[dict[str, Any]]:
    """Case events from JSON lines (blank lines skipped; a bad line raises with its number)."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ev = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            raise ValueError(f"line {n}: not JSON ({err})") from err
        if isinstance(ev, dict) and ev.get("event_id"):
            yield ev


def _at(ev: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(ev["at"])


def _total(rows: Iterable[Figures]) -> Figures:
    keys = ("dispatched", "closed", "closed_on_time", "disposed", "reworked", "extended",
            "open", "overdue")
    rows = list(rows)
    return Figures(key="total", **{k: sum(getattr(r, k) for r in rows) for k in keys})


@dataclass
class Evaluation:
    """The report: figures per department and per street, plus a district total."""

    district: str
    start: date
    end: date
    departments: dict[str, Figures]
    streets: dict[str, Figures]
    total: Figures
    events: int
    units: list[RoleFigures] | None = None  # by role and unit (from events; issue 18)

    def to_dict(self, names: dict[str, str] | None = None) -> dict[str, Any]:
        """JSON-ready; ``names``: code -> name of departments and streets (else the code)."""
        names = names or {}
        return {
            "district": self.district, "from": self.start.isoformat(),
            "to": self.end.isoformat(), "events": self.events,
            "departments": [{**f.to_dict(), "name": names.get(k, k)}
                            for k, f in self.departments.items()],
            "streets": [{**f.to_dict(), "name": names.get(k, k)}
                        for k, f in self.streets.items()],
            "total": self.total.to_dict(),
            **({"units": [u.to_dict() for u in self.units]} if self.units is not None
               else {}),
        }


def evaluate(events: Iterable[dict[str, Any]], district: str, start: date,
             end: date) -> Evaluation:
    """Fold the events up to the end of the period and compute the figures."""
    events = events if isinstance(events, list) else list(events)
    t0, t1 = period(start, end)
    proj = Projection(keep_detail=0)
    n = 0
    for ev in events:
        if _at(ev) < t1:
            n += proj.apply(ev)
    depts = proj.department_figures(t0, t1, now=t1, district=district)
    streets = proj.street_figures(t0, t1, now=t1, district=district)
    units = role_figures((e for e in events if e.get("district") == district), t0, t1)
    return Evaluation(district, start, end, depts, streets, _total(depts.values()), n, units)


def evaluation_of(district: str, start: date, end: date, figures: Any) -> Evaluation:
    """The report from a reader's ``evaluation(t0, t1, district)`` (e.g. the read store's)."""
    t0, t1 = period(start, end)
    depts, streets, n, units = figures(t0, t1, district)
    return Evaluation(district, start, end, depts, streets, _total(depts.values()), n, units)


def _width(s: str) -> int:
    """Display width in a terminal: CJK characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _pad(s: str, width: int, left: bool) -> str:
    fill = " " * max(width - _width(s), 0)
    return s + fill if left else fill + s


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v * 100:.1f}%"
    return str(v)


def render(ev: Evaluation, fmt: str = "table", names: dict[str, str] | None = None) -> str:
    """The report as ``table`` (text), ``csv`` or ``json``; ``names`` (code -> name of
    departments and streets) stand beside the codes in the table and as ``name`` in JSON."""
    data = ev.to_dict(names)
    if fmt == "json":
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
    rows = ([("department", d["key"], d) for d in data["departments"]]
            + [("street", s["key"], s) for s in data["streets"]]
            + [("district", ev.district, data["total"])])
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["scope", "key", *COLUMNS])
        for scope, key, d in rows:
            w.writerow([scope, key, *("" if d[c] is None else d[c] for c in COLUMNS)])
        return buf.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: table, csv or json")
    head = ("", "派遣 disp", "结案 closed", "结案率 closure", "按期 on-time", "返工 rework",
            "延期 ext", "在办 open", "超期 overdue")
    out = [f"考核评价 evaluation · district {ev.district} · {ev.start} – {ev.end} "
           f"(figures as of the end of the period; {ev.events} events)", ""]

    def table(title: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        body = [(label, str(d["dispatched"]), str(d["closed"]), _fmt(d["closure_rate"]),
                 _fmt(d["on_time_rate"]), _fmt(d["rework_rate"]), _fmt(d["extension_rate"]),
                 str(d["open"]), str(d["overdue"])) for label, d in items]
        widths = [max(_width(r[i]) for r in [(title, *head[1:]), *body])
                  for i in range(len(head))]
        def line(r: Sequence[str]) -> str:
            return "  ".join(_pad(c, widths[i], i == 0) for i, c in enumerate(r))

        out.append(line((title, *head[1:])))
        out.append("  ".join("-" * w for w in widths))
        out.extend(line(r) for r in body)
        out.append("")

    names = names or {}
    table("部门 department", [(f"{d['key']} {names.get(d['key'], '')}".strip(), d)
                            for d in data["departments"]]
          + [("合计 total", data["total"])])
    table("街镇 street", [(f"{s['key']} {names.get(s['key'], '')}".strip(), s)
                        for s in data["streets"]])
    if data.get("units"):
        out.extend(_units_table(data["units"]))
    return "\n".join(out)


def _units_table(units: list[dict[str, Any]]) -> list[str]:
    """Work orders by role (主办 lead / 协办 assisting) and the hotline callbacks, per unit."""
    head: tuple[str, ...] = ("单位 unit", "主办 lead", "协办 assist", "协办完成 parts",
                             "回访 callbacks", "满意率 satisfied", "重开率 reopened")
    body: list[tuple[str, ...]] = [
        (f"{u['department']} {u['unit_name'] or u['unit'] or ''}".strip(), str(u["lead"]),
         str(u["assisting"]), str(u["parts_done"] + u["parts_closed_out"]),
         str(u["callbacks"]), _fmt(u["satisfaction_rate"]), _fmt(u["reopen_rate"]))
        for u in units]
    if any(u.get("stages_closed") for u in units):  # legal-process stages, each on time?
        head = (*head, "执法阶段按期 stages on time")
        body = [(*r, f"{u.get('stages_on_time', 0)}/{u.get('stages_closed', 0)}"
                 if u.get("stages_closed") else "-") for r, u in zip(body, units, strict=True)]
    widths = [max(_width(r[i]) for r in [head, *body]) for i in range(len(head))]
    def line(r: Sequence[str]) -> str:
        return "  ".join(_pad(c, widths[i], i == 0) for i, c in enumerate(r))

    return [line(head), "  ".join("-" * w for w in widths), *map(line, body), ""]


@dataclass
class CityEvaluation:
    """The districts of a city side by side: the same figures per district, ranked."""

    start: date
    end: date
    districts: dict[str, Figures]
    total: Figures

    def ranking(self) -> list[Figures]:
        """Best first: closure rate, then on-time rate, then fewer overdue (no rate: last)."""
        return sorted(self.districts.values(), key=lambda f: (
            -(f.closure_rate if f.closure_rate is not None else -1.0),
            -(f.on_time_rate if f.on_time_rate is not None else -1.0), f.overdue, f.key))

    def to_dict(self, names: dict[str, str] | None = None) -> dict[str, Any]:
        names = names or {}
        return {"from": self.start.isoformat(), "to": self.end.isoformat(),
                "districts": [{**f.to_dict(), "rank": i, "name": names.get(f.key, f.key)}
                              for i, f in enumerate(self.ranking(), 1)],
                "total": self.total.to_dict()}


def city_evaluate(events: Iterable[dict[str, Any]], start: date, end: date) -> CityEvaluation:
    """Fold the events up to the end of the period; figures per district."""
    t0, t1 = period(start, end)
    proj = Projection(keep_detail=0)
    for ev in events:
        if _at(ev) < t1:
            proj.apply(ev)
    return _city(start, end, proj.district_figures(t0, t1, now=t1))


def city_evaluation_of(start: date, end: date, figures: Any) -> CityEvaluation:
    """From a reader's ``district_evaluation(t0, t1)`` (e.g. the read store's)."""
    t0, t1 = period(start, end)
    return _city(start, end, figures(t0, t1))


def _city(start: date, end: date, districts: dict[str, Figures]) -> CityEvaluation:
    return CityEvaluation(start, end, districts, _total(districts.values()))


def render_city(ev: CityEvaluation, fmt: str = "table",
                names: dict[str, str] | None = None) -> str:
    """The district ranking as ``table``, ``csv`` or ``json`` (names beside codes)."""
    data = ev.to_dict(names)
    if fmt == "json":
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["rank", "district", "name", *COLUMNS])
        for d in data["districts"]:
            w.writerow([d["rank"], d["key"], d["name"],
                        *("" if d[c] is None else d[c] for c in COLUMNS)])
        return buf.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: table, csv or json")
    head = ("排名 rank", "区 district", "派遣 disp", "结案率 closure", "按期 on-time",
            "返工 rework", "延期 ext", "在办 open", "超期 overdue")
    body = [(str(d["rank"]), f"{d['key']} {d['name']}", str(d["dispatched"]),
             _fmt(d["closure_rate"]), _fmt(d["on_time_rate"]), _fmt(d["rework_rate"]),
             _fmt(d["extension_rate"]), str(d["open"]), str(d["overdue"]))
            for d in data["districts"]]
    t = data["total"]
    body.append(("", "合计 city", str(t["dispatched"]), _fmt(t["closure_rate"]),
                 _fmt(t["on_time_rate"]), _fmt(t["rework_rate"]), _fmt(t["extension_rate"]),
                 str(t["open"]), str(t["overdue"])))
    widths = [max(_width(r[i]) for r in [head, *body]) for i in range(len(head))]
    def line(r: Sequence[str]) -> str:
        return "  ".join(_pad(c, widths[i], i == 1) for i, c in enumerate(r))

    return "\n".join([f"考核评价 city ranking · {ev.start} – {ev.end} (figures as of the end of "
                      f"the period, ranked by closure rate, then on-time rate)", "",
                      line(head), "  ".join("-" * w for w in widths), *map(line, body), ""])
