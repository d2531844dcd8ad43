"""``grid taxonomy`` and ``grid classify``: inspect the taxonomy and try the classifier."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import click

from grid.taxonomy import Taxonomy, TaxonomyError, load_taxonomy

_extra_option = click.option(
    "--extra",
    "extra",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Extension taxonomy file loaded on top of the base (repeatable).",
)


def _load(extra: tuple[Path, ...]) -> Taxonomy:
    try:
        return load_taxonomy(extra)
    except TaxonomyError as e:
        raise click.ClickException(str(e)) from None


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _national(tax: Taxonomy, t: Any) -> str:
    """``部件·公用设施 0118`` (the GB/T 30428.2 class and subclass; ``0101+8`` for several)."""
    subs = t.national_subclasses
    more = f"+{len(subs) - 1}" if len(subs) > 1 else ""
    return f"{tax.national_class(t.code).label_zh} {subs[0]}{more}"


def render_table(tax: Taxonomy) -> str:
    """A readable table grouped by category."""
    rows = []
    for t in tax.types.values():
        d = t.deadlines
        rows.append(
            [
                t.code,
                t.name_zh,
                t.handling,
                t.department,
                f"{d['dispatch']}/{d['dispose']} {t.calendar}",
                _national(tax, t),
                t.name_en,
            ]
        )
    head = ["code", "name", "handling", "department", "dispatch/dispose", "national",
            "name_en"]
    widths = [max(_width(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(_pad(c, w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(head)]
    by_code = {r[0]: r for r in rows}
    for cat in tax.categories.values():
        members = tax.types_in(cat.code)
        out.append("")
        out.append(f"{cat.code} {cat.name_zh} {cat.name_en} [{cat.kind}, {len(members)} types]")
        out.extend(line(by_code[t.code]) for t in members)
    kinds = sorted({c.kind for c in tax.categories.values()})
    out.append("")
    out.append(
        f"{len(tax.categories)} categories ({', '.join(kinds)}), {len(tax.types)} types, "
        f"{len(tax.departments)} departments"
    )
    return "\n".join(out)


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@_extra_option
def taxonomy(fmt: str, extra: tuple[Path, ...]) -> None:
    """List the categories and types (10 categories / 120 types + 12 catch-alls, plus
    extensions), each with its national class (GB/T 30428.2)."""
    tax = _load(extra)
    if fmt == "json":
        click.echo(json.dumps(tax.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(render_table(tax))


@click.command()
@click.argument("description")
@click.option("--top", default=5, show_default=True, help="How many candidates to show.")
@click.option("--threshold", default=None, type=float, help="Score below which: unclassified.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_extra_option
def classify(
    description: str, top: int, threshold: float | None, as_json: bool, extra: tuple[Path, ...]
) -> None:
    """Rank taxonomy types for a free-text DESCRIPTION (Chinese or English)."""
    from grid.classifier import DEFAULT_THRESHOLD, Classifier

    tax = _load(extra)
    clf = Classifier(tax)
    limit = DEFAULT_THRESHOLD if threshold is None else threshold
    found = clf.classify(description, top=top)
    best = found[0] if found and found[0].score >= limit else None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "best": best.type_code if best else None,
                    "threshold": limit,
                    "candidates": [
                        {"type_code": c.type_code, "score": c.score, "matched": c.matched}
                        for c in found
                    ],
                },
                ensure_ascii=False,
            )
        )
        return
    for c in found:
        t = tax.types[c.type_code]
        names = f"{t.name_zh} ({t.name_en})"
        click.echo(f"{c.type_code}  {c.score:.3f}  {names}  {', '.join(c.matched)}")
    click.echo(
        f"-> {best.type_code} {tax.types[best.type_code].name_zh}"
        if best
        else f"-> unclassified (best score below {limit})"
    )
