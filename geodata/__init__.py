"""Spatial layers, point assignment and coordinate systems (pure, no Kafka/HTTP)."""
