"""The worker's settings: one pydantic-settings model of the ``GRID_*`` environment variables
(and CLI flags), read once at the edge and passed down as values.

Each field ``name`` is the variable ``GRID_<NAME>`` (case-insensitive); an empty variable
counts as unset. Booleans take ``1/0``, ``true/false``, ``yes/no``, ``on/off``; lists are
split on ``os.pathsep`` (``GRID_TAXONOMY_EXTRA``) or commas (``GRID_ALLOWED_ORIGINS``).
The README's configuration table lists every field (tests/unit/test_settings.py checks it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from grid.intake import MAX_BYTES as REPORT_MAX_BYTES
from grid.photos import MAX_BYTES as PHOTO_MAX_BYTES

PREFIX = "GRID_"


class SettingsError(ValueError):
    """A ``GRID_*`` variable (or flag) with a value the model refuses; the message is one line
    naming each variable, the value given and what is expected."""


class Settings(BaseSettings):
    """Everything a worker needs. ``Settings.from_env(**overrides)`` is the worker's
    constructor: the environment, then the overrides that are not None (CLI flags); it
    resolves ``fetch_wait_ms`` 0 by broker, prefixes the broker with ``kafka://`` and creates
    ``data_dir`` (:meth:`read`: the same without creating it). Raises :class:`SettingsError`
    for a bad value."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="forbid")

    broker: str = "kafka://127.0.0.1:9092"  # bootstrap servers (comma-separated for a cluster)
    app_id: str = "grid"  # consumer group and changelog prefix
    geodata: str | None = None  # layer directory; None = shipped Yangpu + Qingpu
    rules: str | None = None  # rule-set directory; None = shipped default
    taxonomy_extra: Annotated[list[str], NoDecode] = Field(default_factory=list)  # os.pathsep
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    partitions: int = 8
    replication: int = 1
    data_dir: str = "var/grid"  # local files (the private SQLite read store)
    clock: str = "system"  # 'system', 'x<speed>' or 'x<speed>@<unix time>'
    tick_seconds: float = 1.0  # escalation timer interval
    batch_size: int = 500  # most records a loop takes per poll
    fast_group: bool = True  # short rebalance/session timeouts
    fetch_wait_ms: int = 0  # longest broker fetch wait; 0 = by broker: 500 ms on Apache
    # Kafka (it answers as soon as data is there), 25 ms on Tansu (it holds an empty fetch
    # for the whole wait)
    stuck_seconds: float = 30.0  # a consumer this long without progress while input waits
    # fails the health check (streams/health.py)
    stall_seconds: float = 60.0  # an assigned input partition this long with input waiting
    # and no progress restarts its loop (streams/loop.py, PartitionWatch)
    store_url: str = ""  # the read store (SQLAlchemy URL); "" = SQLite store.db in data_dir
    projector: bool = True  # run a projector into the store in this worker
    # the HTTP API (streams/web), photos (streams/photos.py), pages (streams/dashboard.py)
    api_max_bytes: int = REPORT_MAX_BYTES  # request body limit (413 above)
    api_action_wait: float = 5.0  # seconds an action waits for the engine before 202
    photo_dir: str | None = None  # where photos are kept; None = <data_dir>/photos
    photo_max_bytes: int = PHOTO_MAX_BYTES  # the largest photo accepted
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)  # commas
    dashboard_public: bool = False  # the dashboard without sign-in, no personal data
    dashboard_district: str | None = None  # the district a city-wide user sees first
    # API tokens (grid.auth.load_registry takes them as token_config())
    mode: str = "embedded"  # 'production': no demo tokens
    tokens_file: str | None = None  # YAML/JSON token file
    tokens: str | None = Field(default=None, repr=False)  # the same as JSON

    @field_validator("taxonomy_extra", mode="before")
    @classmethod
    def _split_paths(cls, v: Any) -> Any:
        return [p for p in v.split(os.pathsep) if p] if isinstance(v, str) else v

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.split(",")
        return [o.strip().rstrip("/") for o in v if o.strip()] if isinstance(v, list) else v

    @field_validator("broker")
    @classmethod
    def _kafka_scheme(cls, v: str) -> str:
        return v if v.startswith("kafka://") else "kafka://" + v

    @model_validator(mode="after")
    def _fetch_wait_by_broker(self) -> Settings:
        if not self.fetch_wait_ms:
            from streams.broker import on_tansu

            self.fetch_wait_ms = 25 if on_tansu() else 500
        return self

    @classmethod
    def read(cls, **overrides: object) -> Settings:
        """The environment, then the ``overrides`` that are not None; no side effect.
        Raises :class:`SettingsError` (one line) for a bad value."""
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as err:
            raise SettingsError(describe_error(err)) from None

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """A worker's settings: :meth:`read`, then ``data_dir`` created."""
        s = cls.read(**overrides)
        Path(s.data_dir).mkdir(parents=True, exist_ok=True)
        return s

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Each field's environment variable: ``{"web_port": "GRID_WEB_PORT", …}``."""
        return {name: PREFIX + name.upper() for name in cls.model_fields}

    @property
    def photo_root(self) -> Path:
        """Where uploaded photos are kept: ``photo_dir``, else ``<data_dir>/photos``."""
        return Path(self.photo_dir or Path(self.data_dir) / "photos")

    def token_config(self) -> dict[str, str]:
        """The token configuration as :func:`grid.auth.load_registry` reads it (GRID_MODE,
        GRID_TOKENS_FILE, GRID_TOKENS; unset ones left out)."""
        values = {"mode": self.mode, "tokens_file": self.tokens_file, "tokens": self.tokens}
        return {PREFIX + k.upper(): v for k, v in values.items() if v is not None}


def describe_error(err: ValidationError) -> str:
    """One line for a refused configuration: ``GRID_WEB_PORT='abc': expected an integer …``
    for each bad field (its variable, the value given, pydantic's reason)."""
    parts = []
    for e in err.errors():
        field = str(e["loc"][0]) if e["loc"] else ""
        name = PREFIX + field.upper() if field else "settings"
        value = f"={e['input']!r}" if e["type"] != "missing" else ""
        parts.append(f"{name}{value}: {e['msg'].lower()}")
    return "bad configuration: " + "; ".join(parts)
