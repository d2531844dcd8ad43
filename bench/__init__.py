"""Benchmarks: engine vs raw Kafka baseline (``grid bench``), recovery, spatial."""
