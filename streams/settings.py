"""Worker settings from CLI flags or ``GRID_*`` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"GRID_{name}", default)


@dataclass
class Settings:
    """Everything a worker needs; ``Settings.from_env(**overrides)`` reads GRID_* variables."""

    broker: str = "kafka://127.0.0.1:9092"  # GRID_BROKER (comma-separated for a cluster)
    app_id: str = "grid"  # GRID_APP_ID: consumer group and changelog prefix
    geodata: str | None = None  # GRID_GEODATA: layer directory; None = shipped Yangpu demo
    rules: str | None = None  # GRID_RULES: rule-set directory; None = shipped default
    web_port: int = 6066  # GRID_WEB_PORT
    web_host: str = "127.0.0.1"  # GRID_WEB_HOST
    partitions: int = 8  # GRID_PARTITIONS
    replication: int = 1  # GRID_REPLICATION
    data_dir: str = "var/grid"  # GRID_DATA_DIR: local files (the private SQLite read store)
    clock: str = "system"  # GRID_CLOCK: 'system', 'x<speed>' or 'x<speed>@<unix time>'
    tick_seconds: float = 1.0  # GRID_TICK_SECONDS: escalation timer interval
    batch_size: int = 500  # GRID_BATCH_SIZE: reports per intake batch
    fast_group: bool = True  # GRID_FAST_GROUP: short rebalance/session timeouts (embedded)
    fetch_wait_ms: int = 0  # GRID_FETCH_WAIT_MS: longest broker fetch wait; 0 = by broker:
    # 500 ms on Apache Kafka (it answers as soon as data is there), 25 ms on Tansu (it holds
    # an empty fetch for the whole wait)
    stuck_seconds: float = 30.0  # GRID_STUCK_SECONDS: a consumer this long without progress
    # while input waits fails the health check (streams/health.py)
    store_url: str = ""  # GRID_STORE_URL: the read store (SQLAlchemy URL); "" = SQLite file
    # store.db in data_dir, private to this worker
    projector: bool = True  # GRID_PROJECTOR: run a projector into the store in this worker
    taxonomy_extra: list[str] = field(default_factory=list)  # GRID_TAXONOMY_EXTRA (os.pathsep)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        s = cls()
        for f in fields(cls):
            raw = _env(f.name.upper())
            if raw is None:
                continue
            if f.name == "taxonomy_extra":
                value: object = [p for p in raw.split(os.pathsep) if p]
            elif f.type in ("int",):
                value = int(raw)
            elif f.type in ("float",):
                value = float(raw)
            elif f.type in ("bool",):
                value = raw.lower() in ("1", "true", "yes", "on")
            else:
                value = raw
            setattr(s, f.name, value)
        for k, v in overrides.items():
            if v is not None:
                setattr(s, k, v)
        if not s.fetch_wait_ms:
            from streams.broker import on_tansu

            s.fetch_wait_ms = 25 if on_tansu() else 500
        if not s.broker.startswith("kafka://"):
            s.broker = "kafka://" + s.broker
        Path(s.data_dir).mkdir(parents=True, exist_ok=True)
        return s
