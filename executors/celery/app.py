"""The Celery app, built from configuration (environment variables by default).

Workers start with `celery -A nodeloom.executors.celery.app worker -Q nodeloom.cpu ...`;
the module-level `app` reads its settings from the environment of that process:

| variable | meaning | default |
|---|---|---|
| `NODELOOM_BROKER_URL` | Celery broker | `redis://127.0.0.1:6379/0` |
| `NODELOOM_STORE_URL` | Redis holding run state, fan-in counters and events | the broker URL |
| `NODELOOM_ARTIFACTS` | a folder (one machine) or an fsspec URL, `s3://b/p` (several) | `$NODELOOM_HOME/artifacts` |
| `NODELOOM_NODE_MODULES` | extra node modules to register on workers, comma-separated | none |
| `NODELOOM_VISIBILITY_TIMEOUT` | seconds before an unacknowledged task is delivered again | `3600` |
| `NODELOOM_MAX_DELIVERIES` | deliveries of one node attempt before it is dead-lettered | `3` |
| `NODELOOM_INLINE_LIMIT` | largest node output (bytes of JSON) kept inline in Redis | `65536` |
| `NODELOOM_RUN_TTL` | seconds a finished run's state, outputs and events stay in Redis (0: forever) | `604800` |

The visibility timeout must be longer than the longest node: a task still running when it
expires is delivered to a second worker (the node's attempt counter then counts one more
delivery). Redelivery after a worker dies takes up to this long plus `restore_interval`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery  # type: ignore[import-untyped]

from nodeloom.core.artifacts import default_artifact_root

#: the name of the one task that executes one node of a run
EXECUTE_NODE = "nodeloom.execute_node"
DEFAULT_QUEUES = ("nodeloom.cpu", "nodeloom.io", "nodeloom.gpu")


@dataclass(frozen=True)
class CeleryConfig:
    """Where the broker, the run store and the artifacts are, and how tasks are delivered."""

    broker_url: str = "redis://127.0.0.1:6379/0"
    #: Redis URL of the run store; None means the broker's
    store_url: str | None = None
    #: a folder (or `file://` URL) for workers of one machine, an fsspec URL such as `s3://bucket/prefix` for several
    artifacts: Path | str = field(default_factory=default_artifact_root)
    node_modules: tuple[str, ...] = ()
    visibility_timeout: float = 3600.0
    #: seconds between sweeps that give unacknowledged tasks of dead workers back to the queue
    restore_interval: float = 10.0
    max_deliveries: int = 3
    inline_limit: int = 65536
    #: seconds a finished run stays in the run store (0 keeps it until deleted)
    run_ttl: float = 7 * 86400.0
    #: prefix of the Redis keys of the run store
    key_prefix: str = "nodeloom"

    @property
    def redis_url(self) -> str:
        return self.store_url or self.broker_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CeleryConfig:
        env = os.environ if environ is None else environ
        defaults = cls()
        modules = tuple(name.strip() for name in env.get("NODELOOM_NODE_MODULES", "").split(",") if name.strip())
        return cls(
            broker_url=env.get("NODELOOM_BROKER_URL", defaults.broker_url),
            store_url=env.get("NODELOOM_STORE_URL") or None,
            artifacts=_artifacts_location(env["NODELOOM_ARTIFACTS"]) if env.get("NODELOOM_ARTIFACTS")
            else defaults.artifacts,
            node_modules=modules,
            visibility_timeout=float(env.get("NODELOOM_VISIBILITY_TIMEOUT", defaults.visibility_timeout)),
            restore_interval=float(env.get("NODELOOM_RESTORE_INTERVAL", defaults.restore_interval)),
            max_deliveries=int(env.get("NODELOOM_MAX_DELIVERIES", defaults.max_deliveries)),
            inline_limit=int(env.get("NODELOOM_INLINE_LIMIT", defaults.inline_limit)),
            run_ttl=float(env.get("NODELOOM_RUN_TTL", defaults.run_ttl)),
            key_prefix=env.get("NODELOOM_KEY_PREFIX", defaults.key_prefix),
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that make `from_env` return this configuration (for workers)."""
        env = {
            "NODELOOM_BROKER_URL": self.broker_url,
            "NODELOOM_ARTIFACTS": str(self.artifacts),
            "NODELOOM_NODE_MODULES": ",".join(self.node_modules),
            "NODELOOM_VISIBILITY_TIMEOUT": repr(self.visibility_timeout),
            "NODELOOM_RESTORE_INTERVAL": repr(self.restore_interval),
            "NODELOOM_MAX_DELIVERIES": str(self.max_deliveries),
            "NODELOOM_INLINE_LIMIT": str(self.inline_limit),
            "NODELOOM_RUN_TTL": repr(self.run_ttl),
            "NODELOOM_KEY_PREFIX": self.key_prefix,
        }
        if self.store_url:
            env["NODELOOM_STORE_URL"] = self.store_url
        return env


def _artifacts_location(text: str) -> Path | str:
    return text if "://" in text else Path(text)


def make_app(config: CeleryConfig) -> Celery:
    """A Celery app for nodeloom: late acknowledgement, prefetch 1, JSON messages, no result backend."""
    app = Celery("nodeloom", broker=config.broker_url, include=["nodeloom.executors.celery.tasks"])
    if config.broker_url.startswith("redis://"):
        # the stock Redis transport, minus a crash when Redis restarts (see transport.py)
        app.conf.broker_transport = "nodeloom.executors.celery.transport:Transport"
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        # results and fan-in live in the run store: Celery's result backend is not used
        task_ignore_result=True,
        task_default_queue="nodeloom.cpu",
        task_acks_late=True,
        # a task whose worker process died is given back to the queue, not acknowledged
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        # a restarting Redis: workers reconnect for as long as it takes, publishers retry for ~1 min
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 120, "interval_start": 0, "interval_step": 0.1,
                                   "interval_max": 0.5},
        broker_transport_options={
            "visibility_timeout": config.visibility_timeout,
            "unacked_restore_interval": config.restore_interval,
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
    )
    app.nodeloom_config = config
    return app


#: the app of `celery -A nodeloom.executors.celery.app worker`, configured from the environment
app = make_app(CeleryConfig.from_env())
