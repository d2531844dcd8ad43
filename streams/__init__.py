"""Faust wiring: topics, agents, tables, timers, web. The only package that does I/O.

Importing it makes every aiokafka consumer of the process wait out the embedded broker's
out-of-order batch visibility instead of skipping a batch (:func:`streams.tansu.patch_fetch_gaps`;
a no-op on Apache Kafka): the worker, the CLI, the bench and the tests all read through it.
"""

from streams.tansu import patch_fetch_gaps

patch_fetch_gaps()
