"""The http pack: `http.request`.

It reaches public addresses only unless the run allows private networks (`addresses.py`
holds that policy); `${NODELOOM_SECRET_*}` references are expanded where their binding
allows. `webhook.post` (the webhook pack) sends through the same code.
"""

from nodeloom.node_registry.http.nodes import http_request

__all__ = ["http_request"]
