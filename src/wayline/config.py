"""Settings from WAYLINE_* environment variables and an optional wayline.toml.

This is the only module that reads the environment; everything else receives a Settings object.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


class Limits(BaseModel):
    """Defaults follow the reference system (DOMAIN.md); every one can be changed."""

    max_request_bytes: int = Field(1_048_576, description="largest accepted request body (413 beyond)")
    max_messages_per_request: int = Field(1_000, description="messages in one /collection/batch request")
    max_event_bytes: int = Field(10_240, description="largest experience event record")
    max_profile_record_bytes: int = Field(102_400, description="largest profile (or other) record")
    ingest_rate_per_s: float = Field(20_000, description="messages per second per sandbox (429 beyond)")
    ingest_burst: float = Field(40_000, description="token bucket size of the ingest rate limit")
    max_failed_records_page: int = 1_000
    max_identities_per_record: int = Field(20, description="identities in one profile record (rejected beyond)")
    identity_graph_limit: int = Field(50, description="identities in one graph (the oldest is removed beyond)")
    max_events_per_profile: int = Field(5_000, description="experience events of a profile used by segmentation "
                                        "(beyond: kept, flagged, the oldest excluded from segmentation)")
    max_array_items: int = Field(500, description="items of one array in a profile fragment")
    max_segments: int = Field(4_000, description="segment definitions per sandbox")
    max_continuous_segments: int = Field(500, description="streaming (continuous) segment definitions per sandbox")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WAYLINE_",
        env_nested_delimiter="__",
        toml_file=os.environ.get("WAYLINE_CONFIG", "wayline.toml"),
        extra="ignore",
    )

    database_url: str = Field("sqlite:///var/wayline.db", description="SQLAlchemy URL: sqlite:///… or postgresql://…")
    bus_url: str = Field("local", description="'local' (in-process) or nats://host:port")
    host: str = "127.0.0.1"
    port: int = 8700
    secret_key: str = Field("", description="key for secrets at rest; generated into var/ when empty")
    log_format: str = Field("console", description="console or json")
    log_level: str = "info"
    api_key_cache_seconds: float = Field(5.0, description="how long a verified API key is trusted without a lookup")
    default_sandbox: str = "prod"
    organization: str = "wayline"
    tenant_id: str = Field("wayline", description="tenant id: custom fields live under _<tenant_id>")
    sqlite_synchronous: str = Field("NORMAL", description="NORMAL survives crashes; FULL also survives power loss")
    sqlite_mmap_mb: int = Field(2048, ge=0, description="SQLite reads this much of the database file through a "
                                "memory map instead of read calls (0: off; Python's SQLite caps it at 2 GB). "
                                "Measured: ingestion into a large database is faster with it")
    gc_tuning: bool = Field(True, description="serve with gc.freeze() after start-up and fewer collections "
                            "(measured: ~25% of ingestion CPU went to the cyclic GC otherwise)")
    prepare_processes: int = Field(-1, ge=-1, description="worker processes that parse and validate large "
                                   "ingestion requests beside the writer (-1: one fewer than the cores, at most "
                                   "2: deciding a record costs about a fifth of storing it, and there is one "
                                   "writer; 0: none, all in the server process)")
    prepare_nice: int = Field(8, ge=0, le=19, description="how much lower the prepare and view workers' CPU "
                              "priority is than the server's (added to their nice value): the store's one "
                              "writer is the serial part of ingestion and gets a core first; the workers "
                              "prepare the next requests with the time left (measured: the writer's wait for "
                              "a core per record fell by a quarter, docs/benchmarks.md)")
    limits: Limits = Field(default_factory=Limits)
    backbone_retention_hours: float = Field(24.0, description="keep applied outbox messages and fired timers this "
                                            "long, then delete them (0: keep everything)")
    segments_daily_at: str = Field("02:00", description="UTC time of the daily batch segment evaluation "
                                   "(HH:MM; empty to turn it off)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split("///", 1)[1] if "///" in self.database_url else ""
        return Path(path) if path and path != ":memory:" else None
