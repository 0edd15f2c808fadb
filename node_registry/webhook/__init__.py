"""The webhook pack: `webhook.post` (a JSON payload to a webhook, public addresses only unless the run
allows private networks; artifacts in the payload get a URL or file path beside their digest)."""

from nodeloom.node_registry.webhook.nodes import webhook_post

__all__ = ["webhook_post"]
