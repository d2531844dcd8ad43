"""The ``grid`` command line. Subcommands live next to the code they drive and are
imported lazily, so ``grid taxonomy`` never imports Kafka and ``grid --help`` is fast."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, str] = {
    "geodata": "geodata.cli:geodata",
    "locate": "geodata.cli:locate",
    "route": "rules.cli:route",
    "rules": "rules.cli:rules_group",
    "taxonomy": "grid.cli_core:taxonomy",
    "classify": "grid.cli_core:classify",
    "schema": "grid.cli_schema:schema",
    "openapi": "streams.openapi:openapi",
    "worker": "streams.run:worker",
    "up": "streams.run:up",
    "tokens": "streams.cli:tokens",
    "report": "streams.report_cli:report",
    "projector": "streams.projector_cli:projector",
    "simulate": "streams.simulate:simulate",
    "submit": "streams.cli:submit",
    "tail": "streams.cli:tail",
    "broker": "streams.cli:broker_cmd",
    "kafka": "streams.cli:kafka_group",
    "bench": "bench.cli:bench",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="grid-router")
def main() -> None:
    """Urban grid-management case-routing engine (城市网格化管理)."""


if __name__ == "__main__":  # pragma: no cover
    main()
