"""kombu's Redis transport with one repair, so a worker outlives a Redis restart.

When the broker connection drops, Celery closes it twice (`collect()`, then `close()`). If a
message was delivered but not acknowledged, the second close tries to give it back to Redis
through a connection whose settings kombu has already cleared, and the worker dies with
`AttributeError: 'NoneType' object has no attribute 'hostname'` (kombu 5.7). Here that case
raises a Redis connection error instead, which kombu expects while closing and ignores; the
message stays in Redis's unacknowledged set and comes back after the visibility timeout.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    """A Redis channel whose pool cannot be re-created once its connection was closed."""

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection is closed (Redis went away)")
        params: dict[str, Any] = super()._connparams(asynchronous)  # type: ignore[no-untyped-call]
        return params


class Transport(kombu_redis.Transport):
    """The Redis transport of `redis://` broker URLs in nodeloom's Celery app."""

    Channel = Channel
