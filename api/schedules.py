"""Cron schedules: every API process looks for due fires; each fire is claimed by one of them.

A fire is claimed with a compare-and-set on the schedule's `next_fire_at` (an `UPDATE ...
WHERE next_fire_at = <the time read>`), which one process wins on SQLite and PostgreSQL
alike; the run it starts carries the idempotency key `schedule:<id>:<fire time>`, which the
database keeps unique per project, so even a claim decided twice starts one run.

Policies, stated once here and in docs/api.md:
- overlap: unless the schedule allows it, a fire while its previous run is pending or running
  starts nothing (counted in `skipped_fires`, reason `overlap`);
- downtime: a fire found more than `grace` seconds late was missed while no server ran;
  `catchup=latest` (the default) starts one run for all missed fires, `catchup=skip` none;
  either way the schedule then waits for its next time after now.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from nodeloom.api.auth import Identity
from nodeloom.api.errors import ApiError
from nodeloom.api.runner import RunService
from nodeloom.api.schemas import CatchUp, RunSubmit, Scope
from nodeloom.api.tables import RunRow, ScheduleRow
from nodeloom.core.errors import NodeloomError

log = logging.getLogger("nodeloom.api")


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; 422 naming it when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(422, "invalid_timezone", f"{name!r} is not an IANA time zone",
                       {"field": "timezone", "received": name,
                        "hint": "e.g. UTC, Europe/Paris, America/New_York"}) from None


def next_fire(cron: str, timezone: str, after: float) -> float:
    """The first time (epoch seconds) after `after` that `cron` names in `timezone`; 422 when it does not parse."""
    start = datetime.fromtimestamp(after, zone(timezone))
    try:
        return float(croniter(cron, start).get_next(float))
    except (ValueError, KeyError) as error:  # croniter's CroniterError is a ValueError
        raise ApiError(422, "invalid_cron", f"{cron!r} is not a cron expression: {error}",
                       {"field": "cron", "received": cron,
                        "hint": "5 fields: minute hour day month weekday (e.g. `0 9 * * 1-5`), or 6 with seconds last"},
                       ) from None


def schedule_identity(schedule: ScheduleRow) -> Identity:
    return Identity(key_id=f"schedule:{schedule.id}", project=schedule.project, scopes=frozenset({Scope.RUN}))


class Scheduler:
    """Starts the runs of due schedules; `start` runs it on a thread every `tick` seconds."""

    def __init__(self, engine: Engine, runs: RunService, tick: float = 1.0, grace: float = 60.0) -> None:
        self.engine = engine
        self.runs = runs
        self.tick = tick
        self.grace = grace
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="nodeloom-scheduler", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.fire_due()
            except Exception:  # a bad moment (database restarting) must not end the loop
                log.exception("the scheduler could not look for due schedules")

    def fire_due(self, now: float | None = None) -> list[str]:
        """Claim and start every due fire; returns the ids of the runs this call started."""
        now = time.time() if now is None else now
        with Session(self.engine) as session:
            due = session.exec(select(ScheduleRow).where(
                col(ScheduleRow.enabled).is_(True), col(ScheduleRow.deleted_at).is_(None),
                col(ScheduleRow.next_fire_at) <= now)).all()
        started = []
        for schedule in due:
            run_id = self._fire(schedule, now)
            if run_id is not None:
                started.append(run_id)
        return started

    def _fire(self, schedule: ScheduleRow, now: float) -> str | None:
        fire_at = schedule.next_fire_at
        try:
            following = next_fire(schedule.cron, schedule.timezone, now)
        except ApiError:
            log.error("schedule %s has a cron expression that no longer parses; disabling it", schedule.id)
            following, schedule.enabled = fire_at, False
        with Session(self.engine) as session:
            claimed = session.execute(
                update(ScheduleRow)
                .where(col(ScheduleRow.id) == schedule.id, col(ScheduleRow.next_fire_at) == fire_at)
                .values(next_fire_at=following, last_fire_at=fire_at, enabled=schedule.enabled)
            ).rowcount  # type: ignore[attr-defined]
            session.commit()
        if claimed != 1 or not schedule.enabled:
            return None  # another process took this fire
        reason = self._skip_reason(schedule, fire_at, now)
        if reason is not None:
            self._count(schedule.id, skipped=reason)
            return None
        request = RunSubmit(graph_id=schedule.graph_id, version=schedule.graph_version, inputs=schedule.inputs)
        try:
            run_id, _ = self.runs.submit(schedule_identity(schedule), request, f"schedule:{schedule.id}:{fire_at:.0f}")
        except (NodeloomError, ApiError) as error:
            log.warning("schedule %s could not start its run: %s", schedule.id, error)
            self._count(schedule.id, skipped="failed_to_start")
            return None
        self._count(schedule.id, run_id=run_id)
        return run_id

    def _skip_reason(self, schedule: ScheduleRow, fire_at: float, now: float) -> str | None:
        if now - fire_at > self.grace and schedule.catchup == CatchUp.SKIP:
            return "missed"
        if schedule.allow_overlap or schedule.last_run_id is None:
            return None
        with Session(self.engine) as session:
            last = session.get(RunRow, schedule.last_run_id)
            if last is not None and last.status in ("pending", "running"):
                return "overlap"
        return None

    def _count(self, schedule_id: str, *, run_id: str | None = None, skipped: str | None = None) -> None:
        # counters change in SQL (fires = fires + 1): two processes' fires never lose each other's counts
        values = ({"fires": col(ScheduleRow.fires) + 1, "last_run_id": run_id} if run_id is not None
                  else {"skipped_fires": col(ScheduleRow.skipped_fires) + 1, "last_skip_reason": skipped})
        with Session(self.engine) as session:
            session.execute(update(ScheduleRow).where(col(ScheduleRow.id) == schedule_id).values(**values))
            session.commit()
