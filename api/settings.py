"""Configuration of the API server: where its database is, which executor runs the graphs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ExecutorKind = Literal["pool", "local", "celery"]
EXECUTOR_KINDS: tuple[ExecutorKind, ...] = ("pool", "local", "celery")


def default_db_url() -> str:
    """`$NODELOOM_DB_URL`, else a SQLite file under `$XDG_DATA_HOME/nodeloom` (`~/.local/share/nodeloom`)."""
    url = os.environ.get("NODELOOM_DB_URL")
    if url:
        return url
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{data_home / 'nodeloom' / 'nodeloom.db'}"


@dataclass(frozen=True)
class ApiSettings:
    """Everything `create_app` needs; `from_env` reads the `NODELOOM_*` variables."""

    #: SQLAlchemy-style URL: `sqlite:///path.db` or `postgresql://user@host:5432/db`
    db_url: str = field(default_factory=default_db_url)
    #: `pool` runs graphs in worker processes of its own; `celery` only enqueues them for
    #: `nodeloom worker`s; `local` runs them inside the API process (no isolation: development only)
    executor: ExecutorKind = "pool"
    #: worker processes of the pool executor (None: one per core, at least two)
    workers: int | None = None
    #: the artifact folder (None: the executor's default, `$NODELOOM_HOME/artifacts`)
    artifacts: Path | None = None
    #: extra Python modules whose nodes are registered next to the built-in packs
    node_modules: tuple[str, ...] = ()
    #: threads of the cpu lane of the local executor (of each pool worker) (None: one per core, at least two)
    cpu_workers: int | None = None
    #: how long a checked API key is trusted without reading the database again
    key_cache_seconds: float = 5.0
    #: how long the local executor's node results stay in the database (0: forever)
    result_ttl_seconds: float = 7 * 86400
    #: the LLM behind `POST /v1/drafts`: `local` (embedded SmolLM2) or `openai` (a server at
    #: `draft_base_url`); set by the operator, never by a request, so callers cannot aim it elsewhere
    draft_provider: str = "local"
    draft_base_url: str | None = None
    draft_model: str = ""
    #: the largest request body (413 above it) and the most nodes a graph document may have (422)
    max_body_bytes: int = 16 * 1024 * 1024
    max_nodes: int = 5000
    #: how often (seconds) each server looks for due schedules, and how late a fire may be found
    #: before it counts as missed while no server ran (the schedule's `catchup` policy applies)
    schedule_tick: float = 1.0
    schedule_grace: float = 60.0
    #: let the network nodes of runs (http.request, webhook.post) reach private and loopback
    #: addresses: an intranet, a webhook on this machine; off, they reach public addresses only
    allow_private_network: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if environ is None else environ
        executor = env.get("NODELOOM_EXECUTOR", "pool")
        kind = next((known for known in EXECUTOR_KINDS if known == executor), None)
        if kind is None:
            raise ValueError(f"NODELOOM_EXECUTOR must be one of {', '.join(EXECUTOR_KINDS)}, not {executor!r}")
        workers = env.get("NODELOOM_WORKERS")
        modules = tuple(name.strip() for name in env.get("NODELOOM_NODE_MODULES", "").split(",") if name.strip())
        artifacts = env.get("NODELOOM_ARTIFACTS")
        return cls(
            db_url=env.get("NODELOOM_DB_URL") or default_db_url(),
            executor=kind,
            workers=int(workers) if workers else None,
            artifacts=Path(artifacts) if artifacts else None,
            node_modules=modules,
            result_ttl_seconds=float(env.get("NODELOOM_RESULT_TTL", 7 * 86400)),
            draft_provider=env.get("NODELOOM_DRAFT_PROVIDER", "local"),
            draft_base_url=env.get("NODELOOM_DRAFT_BASE_URL") or None,
            draft_model=env.get("NODELOOM_DRAFT_MODEL", ""),
            max_body_bytes=int(env.get("NODELOOM_MAX_BODY_BYTES", 16 * 1024 * 1024)),
            max_nodes=int(env.get("NODELOOM_MAX_NODES", 5000)),
            schedule_tick=float(env.get("NODELOOM_SCHEDULE_TICK", 1.0)),
            schedule_grace=float(env.get("NODELOOM_SCHEDULE_GRACE", 60.0)),
            allow_private_network=env.get("NODELOOM_ALLOW_PRIVATE_NETWORK", "").lower() in ("1", "true", "yes"),
        )
