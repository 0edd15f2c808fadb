"""The tools pack: nodes that touch the world outside the graph.

`http.request` and `webhook.post` reach public addresses only unless the run allows
private networks (`addresses.py` holds that policy); `file.save` writes into the run's
output folder only.
"""

from nodeloom.node_registry.tools.files import file_save
from nodeloom.node_registry.tools.http import http_request, webhook_post

__all__ = ["file_save", "http_request", "webhook_post"]
