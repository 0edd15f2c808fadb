"""How a trigger delivery is signed, shared by the server and the SDK client (no web imports).

`X-Nodeloom-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the trigger's secret>`,
as GitHub signs its webhooks; `X-Nodeloom-Delivery` optionally names the delivery.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Nodeloom-Signature"
DELIVERY_HEADER = "X-Nodeloom-Delivery"


def signature(secret: str, body: bytes) -> str:
    """The `X-Nodeloom-Signature` value for `body` under `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
