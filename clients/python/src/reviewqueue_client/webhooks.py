"""Verifying reviewqueue's webhooks (docs/API.md, "Webhooks to agents").

Deliveries follow Standard Webhooks: `webhook-id`, `webhook-timestamp` and
`webhook-signature` headers, the signature covering id, time and body, keyed
with the agent's webhook secret. A delivery older or newer than five minutes
is refused, so a captured one can't be replayed later; remember ids you have
handled to refuse a replay within that window.
"""

from __future__ import annotations

from collections.abc import Mapping

from standardwebhooks import Webhook, WebhookVerificationError

from reviewqueue_client import errors
from reviewqueue_client.models import Action


class InvalidSignature(errors.ReviewqueueError):
    code = "invalid_signature"
    next_step = "Ignore the delivery: it was not sent by reviewqueue with this secret, or it is too old."


def verify(body: bytes | str, headers: Mapping[str, str], secret: str) -> Action:
    """The action a delivery carries, once its signature checks out; InvalidSignature otherwise.
    `secret` is the agent's webhook secret (as shown when the agent was created or rotated);
    during a rotation's grace period the delivery is signed with both and either verifies."""
    if not secret:
        raise errors.ConfigurationError("No webhook secret given.")
    try:
        data = Webhook(secret.encode()).verify(body, dict(headers))
    except WebhookVerificationError as problem:
        raise InvalidSignature(f"Webhook signature check failed: {problem}.") from None
    return Action.model_validate(data)
