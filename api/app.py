"""The FastAPI application: `create_app(settings)` wires the database, the executor and the routes.

Start-up upgrades the database schema (Alembic), starts the executor and the event
recorder, and deals with runs that were in flight when the server last stopped.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from nodeloom.api.auth import KeyChecker
from nodeloom.api.db import make_engine, upgrade_database
from nodeloom.api.deps import AppState
from nodeloom.api.errors import install_error_handlers
from nodeloom.api.fastpath import FinishedRunReads
from nodeloom.api.limits import BodySizeLimit
from nodeloom.api.metrics import ApiMetrics, QueueDepths
from nodeloom.api.recorder import RunRecorder
from nodeloom.api.result_cache import DurableResultCache
from nodeloom.api.routes import artifacts, drafts, graphs, keys, nodes, runs, schedules, service, triggers
from nodeloom.api.runner import RunService
from nodeloom.api.schedules import Scheduler
from nodeloom.api.settings import ApiSettings
from nodeloom.core.artifacts import ArtifactStore, LocalArtifactStore, default_artifact_root
from nodeloom.core.context import RunConfig
from nodeloom.executors.base import Executor
from nodeloom.node_registry import NodeRegistry, registry_with

log = logging.getLogger("nodeloom.api")

#: the web console's built bundle (sources in console/ at the repository root, docs/console.md)
CONSOLE_DIR = Path(__file__).resolve().parent / "static" / "console"

DESCRIPTION = """\
Manage nodeloom graphs and runs over HTTP.

Every `/v1` route needs an API key (`Authorization: Bearer <key>` or `X-API-Key`) with a
scope: `read`, `run` (includes read) or `admin` (includes run). A key sees only its
project's graphs and runs. Errors are `{"error": {"code", "message", "details"}}`.
"""


def build_registry(settings: ApiSettings) -> NodeRegistry:
    """The built-in packs and plugins, plus the nodes of `settings.node_modules`."""
    return registry_with(settings.node_modules)


def build_executor(
    settings: ApiSettings, registry: NodeRegistry, engine: Engine,
) -> tuple[Executor, ArtifactStore, QueueDepths | None]:
    """The executor named by the settings, its artifact store, and (pool, Celery) a queue-depth reader.

    The pool (the default: worker processes, so no node runs in the API process) and the local
    executor keep their result cache in the database too (`DurableResultCache`, in this process;
    pool workers ask it over their pipes), so a run resumed after a restart does not redo finished
    nodes; Celery's lives in Redis.
    """
    if settings.executor == "celery":
        import dataclasses

        from nodeloom.executors.celery import CeleryExecutor
        from nodeloom.executors.celery.app import CeleryConfig

        config = CeleryConfig.from_env()
        if settings.artifacts is not None:
            config = dataclasses.replace(config, artifacts=settings.artifacts)
        if settings.node_modules:
            config = dataclasses.replace(config, node_modules=settings.node_modules)
        celery = CeleryExecutor(registry, config=config)
        return celery, celery.artifacts, _celery_queue_depths(config.broker_url)
    artifacts = LocalArtifactStore(settings.artifacts or default_artifact_root())
    cache = DurableResultCache(engine, artifacts, ttl=settings.result_ttl_seconds)
    if settings.executor == "local":
        from nodeloom.executors import LocalExecutor

        local = LocalExecutor(registry, artifacts=artifacts, cache=cache, cpu_workers=settings.cpu_workers)
        return local, artifacts, None
    from nodeloom.executors.pool import PoolExecutor

    pool = PoolExecutor(registry, node_modules=settings.node_modules, workers=settings.workers,
                        artifacts=artifacts.root, cache=cache, cpu_workers=settings.cpu_workers)
    return pool, artifacts, lambda: {"nodeloom.pool": pool.queued()}


def _celery_queue_depths(broker_url: str) -> QueueDepths:
    import redis

    client = redis.Redis.from_url(broker_url)

    def depths() -> dict[str, int]:
        names = ("nodeloom.cpu", "nodeloom.io", "nodeloom.gpu")
        try:
            return {name: int(client.llen(name)) for name in names}
        except redis.RedisError:
            log.warning("could not read the queue depths from %s", broker_url)
            return {}

    return depths


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The API app; the database and executor are set up when the app starts (its lifespan)."""
    settings = settings or ApiSettings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.db_url)
        upgrade_database(engine)
        registry = build_registry(settings)
        executor, artifacts, queue_depths = build_executor(settings, registry, engine)
        metrics = ApiMetrics(engine, queue_depths)
        recorder = RunRecorder(engine, executor, metrics.observe_node)
        run_service = RunService(engine, executor, registry, recorder,
                                 RunConfig(allow_private_network=settings.allow_private_network))
        run_service.recover()
        run_service.start_timer()
        scheduler = Scheduler(engine, run_service, tick=settings.schedule_tick, grace=settings.schedule_grace)
        scheduler.start()
        # the registry, schemas and modules loaded so far live as long as the server: keep the
        # cyclic garbage collector from rescanning them on every full collection (latency spikes)
        gc.collect()
        gc.freeze()
        app.state.nodeloom = AppState(
            settings=settings, engine=engine, registry=registry, artifacts=artifacts, runs=run_service,
            keys=KeyChecker(engine, settings.key_cache_seconds), metrics=metrics,
        )
        try:
            yield
        finally:
            scheduler.close()
            run_service.close()
            recorder.close()
            executor.close()
            engine.dispose()

    from nodeloom import __version__

    app = FastAPI(title="nodeloom", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(FinishedRunReads)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for module in (service, nodes, graphs, runs, artifacts, drafts, keys, triggers, schedules):
        app.include_router(module.router)
    # last, so every route above wins: the console is public static files that call the
    # routes above with the user's key, like any other client (it adds no endpoint)
    if (CONSOLE_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    return app
