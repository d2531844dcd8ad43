"""Adapters and entry points: the Kafka loops, the Faust app, the broker, web, CLI.

Importing it in a process started with ``GRID_BROKER_KIND=tansu`` makes every aiokafka
consumer of that process wait out Tansu's out-of-order batch visibility instead of skipping
a batch (:func:`streams.tansu.patch_fetch_gaps`). On Apache Kafka nothing is patched.
"""

from streams.broker import on_tansu

if on_tansu():  # Tansu only: see streams/tansu.py
    from streams.tansu import patch_fetch_gaps

    patch_fetch_gaps()
