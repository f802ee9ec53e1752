"""Notifications and agent webhooks, through an outbox.

`enqueue` runs inside the transaction of the event that causes it, so an
event and its messages commit (or vanish) together. The worker delivers each
message: at most 3 retries with exponential backoff and full jitter, a circuit
breaker per endpoint (and per agent, for agent webhooks), and dead letters
kept for ops. Every request goes through netguard, which refuses URLs that
lead into the service's own network; agent webhooks are signed the Standard
Webhooks way (delivery id and timestamp under the signature).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks import Webhook

from reviewqueue.core import admission, netguard
from reviewqueue.credentials.keys import webhook_secrets_live
from reviewqueue.models import (
    Action,
    CircuitBreaker,
    NotificationChannel,
    OutboxMessage,
    OutboxStatus,
)
from reviewqueue.privacy import masking as privacy

logger = logging.getLogger(__name__)

AGENT_WEBHOOK = "agent_webhook"
MAX_RETRIES = 3
LEASE = timedelta(seconds=30)  # a delivery in flight; a dead worker's lease runs out


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def enqueue(
    *,
    event: str,
    action: Action | None = None,
    data: dict[str, Any] | None = None,
    to_agent: bool = False,
    at: datetime | None = None,
) -> list[OutboxMessage]:
    """Write the messages an event causes; call inside the event's transaction."""
    return enqueue_many([(event, action, data)], to_agent=to_agent, at=at)


def enqueue_many(
    events: Sequence[tuple[str, Action | None, dict[str, Any] | None]],
    *,
    to_agent: bool = False,
    at: datetime | None = None,
) -> list[OutboxMessage]:
    """`enqueue` for many (event, action, data) at once: one subscriber lookup, one INSERT."""
    from reviewqueue.models.json import action_json

    now = at or timezone.now()
    channels = _channels()
    messages = []
    for event, action, data in events:
        if to_agent and action is not None and action.callback_url:
            messages.append(
                OutboxMessage(
                    event=event,
                    kind=AGENT_WEBHOOK,
                    endpoint=action.callback_url,
                    action=action,
                    agent_id=action.agent_id,
                    body=_json_safe(action_json(action)),
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        for channel in channels:
            if not any(fnmatch.fnmatchcase(event, pattern) for pattern in channel.events):
                continue
            # A group's channel reaches people who may not reveal personal data: masked, as on their pages.
            messages.append(
                OutboxMessage(
                    event=event,
                    kind=channel.kind,
                    endpoint=_channel_endpoint(channel),
                    channel=channel,
                    action=action,
                    agent_id=action.agent_id if action else None,
                    body=_json_safe(
                        privacy.payload_mask(
                            {
                                "event": event,
                                "text": _text(event, action, data),
                                "data": data or {},
                                "action": _action_brief(action),
                            }
                        ).value
                    ),
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    if messages:
        OutboxMessage.objects.bulk_create(messages, batch_size=1000)
        ids = [m.pk for m in messages]
        transaction.on_commit(lambda: _dispatch(ids))
    return messages


def _channels() -> list[NotificationChannel]:
    return list(NotificationChannel.objects.filter(is_active=True).select_related("group"))


def _channel_endpoint(channel: NotificationChannel) -> str:
    if channel.kind != "email" or channel.target:
        return channel.target
    return ",".join(sorted(u.email for u in channel.group.user_set.filter(is_active=True) if u.email))


def _action_brief(action: Action | None) -> dict | None:
    if action is None:
        return None
    return {
        "id": str(action.pk),
        "agent": action.agent.name,
        "action_type": action.action_type,
        "summary": privacy.text_mask(action.summary)[:300],
        "status": action.status,
        "tier": action.tier,
        "review_state": action.review_state,
        "escalation_level": action.escalation_level,
    }


def _text(event: str, action: Action | None, data: dict | None) -> str:
    what = event.replace("_", " ").replace(".", ": ")
    if action is None:
        return f"reviewqueue {what} {json.dumps(data or {}, cls=DjangoJSONEncoder)}"
    summary = privacy.text_mask(action.summary)[:200]  # masked before the cut, which could split a value
    return f"reviewqueue {what} — {action.agent.name}: {action.action_type} “{summary}” ({action.pk})"


def _dispatch(ids: list[int]) -> None:
    # Publishing waits on the broker (retries and all, when it is away): let
    # other requests run meanwhile.
    with admission.yielded():
        for message_id in ids:
            try:
                deliver_task.delay(message_id)
            except Exception:  # broker away: the outbox sweep delivers it later
                logger.warning("could not queue delivery of outbox message %s; the sweep will", message_id)


# ------------------------------------------------------------- delivery ---


@shared_task(name="reviewqueue.deliver", time_limit=30, ignore_result=True, acks_late=True)
def deliver_task(message_id: int, **kwargs) -> None:
    """First try of one outbox message, queued when its event commits."""
    deliver(message_id)


def _breaker_key(message: OutboxMessage) -> str:
    """The circuit a message goes through: its endpoint's origin, and for an
    agent webhook also the agent, so one agent's failing endpoint does not
    stop deliveries to another agent on the same host."""
    if message.kind == "email":
        return "email"
    parts = urlsplit(message.endpoint)
    owner = f"agent:{message.agent_id} " if message.kind == AGENT_WEBHOOK else ""
    return f"{owner}{parts.scheme}://{parts.netloc}"[:300]


def _claim(message_id: int, now: datetime) -> OutboxMessage | None:
    # A lease, not a lock held across the HTTP call: of two workers only one
    # wins the conditional UPDATE; if it dies, the lease runs out and the
    # message is tried again (at least once, never twice at the same time).
    won = OutboxMessage.objects.filter(pk=message_id, status=OutboxStatus.PENDING, next_attempt_at__lte=now).update(
        next_attempt_at=now + LEASE
    )
    return OutboxMessage.objects.select_related("agent").get(pk=message_id) if won else None


def deliver(message_id: int) -> str:
    """Try one message once if it is due; returns what happened."""
    now = timezone.now()
    message = _claim(message_id, now)
    if message is None:
        return "not due"
    breaker_key = _breaker_key(message)
    if not _breaker_allows(breaker_key, now):
        reopen = CircuitBreaker.objects.get(pk=breaker_key).open_until
        OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=max(reopen or now, now))
        return "circuit open"
    try:
        _send(message)
    except netguard.UnsafeURL as exc:  # not the far end failing: the service will not call there
        OutboxMessage.objects.filter(pk=message.pk).update(
            status=OutboxStatus.DEAD, attempts=message.attempts + 1, last_error=f"refused: {exc}"[:2000]
        )
        logger.warning("outbox message %s refused: %s", message.pk, exc)
        return "refused"
    except Exception as exc:  # any failure of the far end counts the same
        _breaker_record(breaker_key, ok=False, now=timezone.now())
        return _failed(message, f"{type(exc).__name__}: {exc}"[:2000])
    _breaker_record(breaker_key, ok=True, now=timezone.now())
    OutboxMessage.objects.filter(pk=message.pk).update(
        status=OutboxStatus.DELIVERED, delivered_at=timezone.now(), attempts=message.attempts + 1, last_error=""
    )
    return "delivered"


def _failed(message: OutboxMessage, error: str) -> str:
    attempts = message.attempts + 1
    if attempts > MAX_RETRIES:
        OutboxMessage.objects.filter(pk=message.pk).update(
            status=OutboxStatus.DEAD, attempts=attempts, last_error=error
        )
        logger.warning("outbox message %s is a dead letter: %s", message.pk, error)
        return "dead"
    base = settings.REVIEWQUEUE["OUTBOX_BACKOFF_SECONDS"]
    delay = random.uniform(0, base * 2**attempts)  # noqa: S311 (full jitter, not a secret)
    OutboxMessage.objects.filter(pk=message.pk).update(
        attempts=attempts, last_error=error, next_attempt_at=timezone.now() + timedelta(seconds=delay)
    )
    return "retry"


def _send(message: OutboxMessage) -> None:
    timeout = settings.REVIEWQUEUE["OUTBOX_TIMEOUT_SECONDS"]
    if message.kind == "email":
        recipients = [a.strip() for a in message.endpoint.split(",") if a.strip()]
        if recipients:
            send_mail(f"[reviewqueue] {message.event}", message.body["text"], None, recipients)
        return
    if message.kind == AGENT_WEBHOOK:
        body = json.dumps(message.body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Reviewqueue-Event": message.event,
            **signature_headers(message, body, timezone.now()),
        }
    elif message.kind == "slack":
        body = json.dumps({"text": message.body["text"]}).encode()
        headers = {"Content-Type": "application/json"}
    else:
        body = json.dumps(message.body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "X-Reviewqueue-Event": message.event}
    response = netguard.post(message.endpoint, content=body, headers=headers, timeout=timeout)
    response.raise_for_status()


def signature_headers(message: OutboxMessage, body: bytes, now: datetime) -> dict[str, str]:
    """Standard Webhooks headers: the delivery id (the same on every retry) and
    the attempt's time are signed with the body, so a receiver that remembers
    ids and refuses old timestamps refuses replays. During a secret's grace
    period both secrets sign. The key is the secret's bytes, as for the older
    X-Reviewqueue-Signature (the body alone), kept for existing receivers and
    signed with the oldest live secret, so they keep working until the grace ends."""
    if message.agent is None:
        raise ValueError("only an agent's webhook is signed")
    live = webhook_secrets_live(message.agent, now)
    delivery_id = f"msg_{message.pk}"
    text = body.decode()
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(Webhook(secret.encode()).sign(delivery_id, now, text) for secret in live),
        "X-Reviewqueue-Signature": "sha256=" + sign(body, live[-1]),
    }


def sign(body: bytes, secret: str) -> str:
    """Hex HMAC-SHA256 of the exact body bytes (API.md, "Webhooks to agents")."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _breaker_allows(key: str, now: datetime) -> bool:
    breaker = CircuitBreaker.objects.filter(pk=key).first()
    if breaker is None or breaker.open_until is None:
        return True
    if now < breaker.open_until:
        return False
    # Half-open: exactly one probe goes through (a conditional UPDATE picks it).
    stale = now - LEASE
    return bool(
        CircuitBreaker.objects.filter(pk=key)
        .filter(Q(probe_started_at__isnull=True) | Q(probe_started_at__lt=stale))
        .update(probe_started_at=now)
    )


def _breaker_record(key: str, *, ok: bool, now: datetime) -> None:
    limits = settings.REVIEWQUEUE
    with transaction.atomic():
        breaker, _ = CircuitBreaker.objects.select_for_update().get_or_create(pk=key)
        if ok:
            breaker.failures, breaker.open_until, breaker.probe_started_at = [], None, None
        else:
            window_start = now - limits["BREAKER_WINDOW"]
            recent = [t for t in breaker.failures if datetime.fromisoformat(t) >= window_start]
            recent.append(now.isoformat())
            breaker.failures = recent[-limits["BREAKER_FAILURES"] :]
            if breaker.probe_started_at is not None or len(recent) >= limits["BREAKER_FAILURES"]:
                breaker.open_until = now + limits["BREAKER_COOLDOWN"]
            breaker.probe_started_at = None
        breaker.save()


def outbox_sweep(*, limit: int = 200) -> int:
    """Deliver every due message (first tries whose task was lost, and retries)."""
    due = list(
        OutboxMessage.objects.filter(status=OutboxStatus.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for message_id in due:
        deliver(message_id)
    return len(due)
