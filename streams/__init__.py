"""Faust wiring: topics, agents, tables, timers, web. The only package that does I/O."""
