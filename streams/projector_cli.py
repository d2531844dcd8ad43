"""``grid projector``: run a projector into a (shared) read store outside the workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import click


@click.command()
@click.option("--store", "store_url", envvar="GRID_STORE_URL",
              help="read store URL (GRID_STORE_URL) [default: grid up's SQLite store]")
@click.option("--broker", envvar="GRID_BROKER", default=None,
              help="Kafka bootstrap (GRID_BROKER) [default: the broker grid up recorded]")
@click.option("--app-id", envvar="GRID_APP_ID", default="grid", show_default=True,
              help="the engine's app id (GRID_APP_ID): names the consumer group")
@click.option("--geodata", envvar="GRID_GEODATA", help="layer directory (for place names)")
@click.option("--rebuild", is_flag=True,
              help="empty the store first and fill it again from the whole log")
def projector(store_url: str | None, broker: str | None, app_id: str, geodata: str | None,
              rebuild: bool) -> None:
    """Keep the read store up to date from grid.case-events.v1, grid.dispatch.v1 and
    grid.alerts.v1. Several projectors on one store share the partitions (consumer group
    <app id>-projector); rows and offsets are written in one transaction, so a killed
    projector loses and doubles nothing."""
    from geodata.locator import Locator
    from grid.taxonomy import load_taxonomy
    from store.db import connect, default_url, reset
    from store.writer import StoreWriter
    from streams.broker import resolve_broker
    from streams.projector import Projector
    from streams.readmodel import category_of, group_of, names_of

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    url = store_url or default_url()
    engine = connect(url)
    if rebuild:
        click.echo(f"grid projector: emptying the store {engine.url!r}", err=True)
        reset(engine)
    tax = load_taxonomy()
    group = group_of(app_id, url, private=False)
    writer = StoreWriter(engine, consumer=group, names=names_of(Locator.load(geodata), tax),
                         category_of=category_of(tax))
    proj = Projector(resolve_broker(broker), writer, group)
    click.echo(f"grid projector: {proj.bootstrap} -> {engine.url!r} (group {group})", err=True)

    async def main() -> None:
        task = asyncio.create_task(proj.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        waiter = asyncio.create_task(proj.caught_up.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if waiter.done():
            click.echo(f"grid projector: caught up ({proj.applied} events stored)", err=True)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
