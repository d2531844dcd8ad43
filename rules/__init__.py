"""Rule tables and the decision engine (pure, no Kafka/HTTP)."""
