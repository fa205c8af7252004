"""The composition root: the one place that decides which adapters run.

It builds the store, the key verifier and each product's service for the chosen roles, and the
HTTP app over them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI

from wayline import __version__
from wayline.config import Settings
from wayline.kernel import tenancy
from wayline.kernel.backbone import Backbone
from wayline.kernel.clock import Clock
from wayline.kernel.store import Store
from wayline.kernel.web import ORJSONResponse, RateLimiter, document_problems, install_problem_handlers

ROLES = ("platform", "journeys", "messaging")


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    renderer: Any = (structlog.processors.JSONRenderer() if settings.log_format == "json"
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(),
                                                 exception_formatter=structlog.dev.plain_traceback))
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso"), structlog.processors.format_exc_info,
                    renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),
        cache_logger_on_first_use=True,
    )


class _Stderr:
    """Whatever sys.stderr is when a line is written, not when logging was configured: loggers are
    cached for the process's life, and the stream they were made with may be replaced and closed
    (pytest's output capture does, after a test that ran the CLI)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@dataclass
class Runtime:
    settings: Settings
    roles: tuple[str, ...] = ROLES
    store: Store = field(init=False)
    verifier: tenancy.KeyVerifier = field(init=False)
    ingest_limiter: RateLimiter = field(init=False)
    platform: Any = field(init=False, default=None)
    prepare_pool: Any = field(init=False, default=None)
    clock: Clock = field(default_factory=Clock)
    background: bool = False  # run the backbone (timers, consumers) inside the API process
    backbone: Backbone = field(init=False)

    def __post_init__(self) -> None:
        path = self.settings.sqlite_path()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.settings.database_url, synchronous=self.settings.sqlite_synchronous,
                           mmap_mb=self.settings.sqlite_mmap_mb)
        self.verifier = tenancy.KeyVerifier(self.store, self.settings.api_key_cache_seconds)
        limits = self.settings.limits
        self.ingest_limiter = RateLimiter(limits.ingest_rate_per_s, limits.ingest_burst)
        retention = self.settings.backbone_retention_hours
        self.backbone = Backbone(self.store, self.clock, retention_ms=int(retention * 3_600_000) if retention > 0 else None)
        if "platform" in self.roles:
            from wayline.platform.governance.service import GovernanceService
            from wayline.platform.prepare_pool import PreparePool
            from wayline.platform.service import PlatformService, ProfileService, SegmentService

            n = self.settings.prepare_processes
            self.prepare_pool = PreparePool(min((os.cpu_count() or 1) - 1, 2) if n < 0 else n,
                                            nice=self.settings.prepare_nice)
            self.platform = PlatformService(self.store, self.settings, self.prepare_pool)
            self.profiles = ProfileService(self.store, self.settings, self.prepare_pool)
            self.segments = SegmentService(self.store, self.settings, self.platform.schemas, self.clock)
            self.segments.attach(self.backbone)
            self.governance = GovernanceService(self.store, self.settings)
            self.governance.register_entity_type("segment", self.segments.labels_of)

    def migrate(self) -> None:
        from wayline.migrations import migrate

        migrate(self.settings.database_url)

    def bootstrap(self) -> str | None:
        """Create the organization and default sandbox on first start; returns a new admin key then."""

        def unit(conn: Any) -> str | None:
            org_id = tenancy.ensure_organization(conn, name=self.settings.organization,
                                                 tenant_id=self.settings.tenant_id)
            if tenancy.get_sandbox(conn, self.settings.default_sandbox) is not None:
                return None
            sb = tenancy.create_sandbox(conn, org_id=org_id, name=self.settings.default_sandbox)
            key, _ = tenancy.create_key(conn, sandbox_id=sb.id, role="admin", name="first admin key")
            return key

        return self.store.run(unit)

    def close(self) -> None:
        if self.prepare_pool is not None:
            self.prepare_pool.close()
        self.store.close()


def tune_gc(settings: Settings) -> None:
    """Serving allocates many short-lived JSON objects; the cyclic collector scanning the long-lived
    start-up heap again and again cost about a quarter of ingestion CPU (bench/ingest.py). Freeze
    the start-up heap and collect less often.

    The first threshold is above what one unit of profile ingestion keeps alive until it commits
    (a 1,000-record unit: ~70,000 containers, 3.4 young collections per unit at a threshold of
    20,000). At 20,000 the collector examined most of them once or twice before the unit freed
    them; that was 6 % of a profile build (bench/profile.py, 200,000 profiles: 3.9 s of collection
    at 20,000, 0.13 s at 100,000)."""
    if settings.gc_tuning:
        import gc

        gc.collect()
        gc.freeze()
        gc.set_threshold(100_000, 20, 20)


def secret_key(settings: Settings) -> str:
    """The key for secrets at rest: from settings, or generated once into var/secret.key."""
    if settings.secret_key:
        return settings.secret_key
    path = Path("var/secret.key")
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def build_app(runtime: Runtime) -> FastAPI:
    from wayline.kernel import api as kernel_api
    from wayline.kernel.idempotency import IdempotencyMiddleware
    from wayline.kernel.metrics import MetricsMiddleware

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.backbone.run(stop)) if runtime.background else None
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task

    # FastAPI's own OpenTelemetry hooks are off: metrics go to Prometheus (/metrics), and the hooks
    # cost 30-60 µs of event-loop time per request (bench/ingest.py profile).
    app = FastAPI(title="Wayline", version=__version__, default_response_class=ORJSONResponse, lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
                  description="Customer data platform, journey orchestrator and real-time messaging.")
    app.state.runtime = runtime
    install_problem_handlers(app)
    document_problems(app)
    app.include_router(kernel_api.router)
    if runtime.platform is not None:
        from wayline.platform import api as platform_api

        for router in platform_api.routers():
            app.include_router(router)
    app.add_middleware(IdempotencyMiddleware, runtime=runtime)
    if runtime.platform is not None:
        from wayline.kernel.web import FastPath
        from wayline.platform import api as platform_api

        app.add_middleware(FastPath, routes=platform_api.fast_routes(), reserved=("/collection/inlets",))
    app.add_middleware(MetricsMiddleware)
    return app
