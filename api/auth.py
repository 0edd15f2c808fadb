"""API keys: made once, shown once, stored as a SHA-256 digest, checked with a short-lived cache.

A key reads `nl_<prefix>_<secret>`. The prefix finds the row; the digest of the whole key
is compared in constant time. Keys hold 256 random bits, so a plain SHA-256 (not a slow
password hash) is enough and keeps each request cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session, select

from nodeloom.api.schemas import KeyInfo, Scope
from nodeloom.api.tables import ApiKeyRow

#: each scope and the scopes it includes
_GRANTS = {
    Scope.READ: {Scope.READ},
    Scope.RUN: {Scope.READ, Scope.RUN},
    Scope.ADMIN: {Scope.READ, Scope.RUN, Scope.ADMIN},
}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: a key of one project, with what it may do."""

    key_id: str
    project: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


def parse_scopes(raw: Iterable[str]) -> list[Scope]:
    """Scope names to `Scope`s; raises `ValueError` naming an unknown one."""
    scopes: list[Scope] = []
    for name in raw:
        name = name.strip()
        if not name:
            continue
        try:
            scopes.append(Scope(name))
        except ValueError:
            raise ValueError(f"unknown scope {name!r}: use read, run or admin") from None
    if not scopes:
        raise ValueError("give at least one scope: read, run or admin")
    return scopes


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(
        id=row.id, prefix=row.prefix, project=row.project, scopes=parse_scopes(row.scopes.split(",")),
        name=row.name, created_at=row.created_at, revoked_at=row.revoked_at,
    )


def create_key(engine: Engine, project: str, scopes: Iterable[Scope], name: str = "") -> tuple[str, KeyInfo]:
    """Make a key for `project`: the secret (to show once) and what is stored about it."""
    project = project.strip()
    if not project:
        raise ValueError("the project name is empty")
    prefix = secrets.token_hex(6)
    key = f"nl_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKeyRow(
        id=uuid.uuid4().hex, prefix=prefix, digest=_digest(key), project=project,
        scopes=",".join(sorted({scope.value for scope in scopes})), name=name, created_at=time.time(),
    )
    with Session(engine) as session:
        session.add(row)
        session.commit()
        session.refresh(row)
        return key, key_info(row)


class KeyChecker:
    """Turns the key of a request into an `Identity`, remembering good keys for `ttl` seconds."""

    def __init__(self, engine: Engine, ttl: float = 5.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self._known: dict[str, tuple[Identity, float]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def remembered(self, key: str) -> Identity | None:
        """The identity of a key checked less than `ttl` seconds ago; None if it must be looked up.

        A key checked less than `2 * ttl` ago is still answered from memory while one
        background lookup refreshes it, so busy clients never all miss at the same moment.
        """
        digest = _digest(key)
        cached = self._known.get(digest)
        if cached is None:
            return None
        identity, fresh_until = cached
        now = time.monotonic()
        if fresh_until > now:
            return identity
        if fresh_until + self.ttl < now:
            return None
        with self._lock:
            if digest in self._refreshing:
                return identity
            self._refreshing.add(digest)
        threading.Thread(target=self._refresh, args=(key, digest), name="nodeloom-api-key-refresh",
                         daemon=True).start()
        return identity

    def _refresh(self, key: str, digest: str) -> None:
        try:
            if self._lookup(key, digest) is None:
                with self._lock:
                    self._known.pop(digest, None)
        finally:
            with self._lock:
                self._refreshing.discard(digest)

    def identify(self, key: str) -> Identity | None:
        """The identity of a valid, unrevoked key; None otherwise."""
        digest = _digest(key)
        cached = self._known.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return self._lookup(key, digest)

    def _lookup(self, key: str, digest: str) -> Identity | None:
        parts = key.split("_")
        if len(parts) < 3 or parts[0] != "nl":
            return None
        with Session(self.engine) as session:
            row = session.exec(select(ApiKeyRow).where(ApiKeyRow.prefix == parts[1])).first()
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.digest, digest):
            return None
        granted: set[Scope] = set()
        for scope in parse_scopes(row.scopes.split(",")):
            granted |= _GRANTS[scope]
        identity = Identity(row.id, row.project, frozenset(granted))
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[digest] = (identity, time.monotonic() + self.ttl)
        return identity

    def forget(self, key_id: str) -> None:
        """Drop a revoked key from the cache at once."""
        with self._lock:
            for digest in [d for d, (identity, _) in self._known.items() if identity.key_id == key_id]:
                del self._known[digest]
