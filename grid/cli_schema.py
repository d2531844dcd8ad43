"""``grid schema``: JSON Schemas of every wire model, for other teams to validate messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from grid.events import CaseEvent, event_json_schema
from grid.models import WIRE_MODELS


def schemas() -> dict[str, dict[str, Any]]:
    """Schema id (e.g. ``grid.report/1``) -> JSON Schema (serialisation form, by alias)."""
    out = {}
    for sid, model in WIRE_MODELS.items():
        s = (event_json_schema() if model is CaseEvent
             else model.model_json_schema(by_alias=True, mode="validation"))
        s["$id"] = f"urn:{sid}"
        out[sid] = s
    return out


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write one <name>.schema.json file per model into this directory.")
@click.argument("name", required=False)
def schema(out: Path | None, name: str | None) -> None:
    """Print (or write) the JSON Schemas of the wire models; NAME picks one (e.g. grid.report/1)."""
    all_ = schemas()
    if name:
        if name not in all_:
            raise click.BadParameter(f"unknown schema {name!r}; known: {', '.join(all_)}")
        all_ = {name: all_[name]}
    if out:
        out.mkdir(parents=True, exist_ok=True)
        for sid, s in all_.items():
            path = out / (sid.replace("/", "-v") + ".schema.json")
            path.write_text(json.dumps(s, indent=2, ensure_ascii=False) + "\n")
            click.echo(path)
    else:
        click.echo(json.dumps(all_ if not name else all_[name], indent=2, ensure_ascii=False))
