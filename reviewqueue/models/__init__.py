"""Tables of the review queue. Writes go through the service modules
(actions, credentials, audit, controls); nothing here assigns a status."""

import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from reviewqueue.core.ids import uuid7
from reviewqueue.core.names import names_within
from reviewqueue.core.roles import Role
from riskrouter.types import ActionInput, Tier

AGENT_NAME = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", "Letters, digits, '.', '_' and '-'.")


def _webhook_secret() -> str:
    return secrets.token_hex(32)


class Agent(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[AGENT_NAME])
    description = models.TextField(blank=True)
    scopes = models.JSONField(
        default=list,
        blank=True,
        help_text="Shell-style patterns of the action types and tools it may submit, e.g. payments.*",
    )
    owners = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="owned_agents")
    rate_limit_per_minute = models.PositiveIntegerField(default=120)
    conversation_rate_limit_per_minute = models.PositiveIntegerField(default=30)
    webhook_secret = models.CharField(max_length=64, default=_webhook_secret, editable=False)
    # After a rotation with a grace period, deliveries are signed with the old secret too until then.
    webhook_secret_previous = models.CharField(max_length=64, blank=True, default="", editable=False)
    webhook_secret_previous_until = models.DateTimeField(null=True, blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def allows(self, action_type: str, tool: str = "") -> bool:
        """Both what the action is called and the tool it runs must be in scope."""
        return names_within(self.scopes, action_type, tool)


class ApiKey(models.Model):
    """A bearer credential of an agent or a user, stored as a SHA-256 hash.

    Keys are 256-bit random strings, so a fast hash is safe and lets a request
    find its key with one indexed lookup.
    """

    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="keys")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise a key.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(agent__isnull=False, user__isnull=True)
                | models.Q(agent__isnull=True, user__isnull=False),
                name="apikey_belongs_to_agent_xor_user",
            )
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.agent or self.user})"


class Status(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    HALTED = "halted"


# The tier is the risk router's (riskrouter.types.Tier, with its order); the
# column offers exactly its values.
TIER_CHOICES = [(tier.value, tier.name.replace("_", " ").title()) for tier in Tier]


class ReviewState(models.TextChoices):
    NONE = "none"
    AWAITING_REVIEW = "awaiting_review"
    CONFIRMED = "confirmed"
    FLAGGED = "flagged"


class Outcome(models.TextChoices):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# An open item: work a reviewer still has to do. A blocking action waiting
# for a decision, or an async action that went ahead and awaits its review.
OPEN_BLOCKING = models.Q(status=Status.PENDING, tier=Tier.BLOCKING)
OPEN_ASYNC = models.Q(status=Status.APPROVED, tier=Tier.ASYNC_REVIEW, review_state=ReviewState.AWAITING_REVIEW)


class ActionQuerySet(models.QuerySet):
    """The one definition of "open" and "escalated" that queues, counts, stats and claims share."""

    def open_blocking(self) -> "ActionQuerySet":
        return self.filter(OPEN_BLOCKING)

    def open_async(self) -> "ActionQuerySet":
        return self.filter(OPEN_ASYNC)

    def open(self) -> "ActionQuerySet":
        return self.filter(OPEN_BLOCKING | OPEN_ASYNC)

    def escalated(self) -> "ActionQuerySet":
        """Open items handed to a group or a person, by the SLA or by a reviewer."""
        return self.open().filter(escalated_to__gt="")


class Action(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No index of its own: action_agent_recent and action_conversation lead
    # with it, and every submission would pay for a third.
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="actions", db_index=False)
    action_type = models.CharField(max_length=128)
    tool = models.CharField(max_length=200, blank=True)
    payload = models.JSONField()
    summary = models.TextField()
    rationale = models.TextField(blank=True)
    conversation_id = models.CharField(max_length=200, blank=True)
    context = models.JSONField(null=True, blank=True)
    cost = models.JSONField(null=True, blank=True)
    callback_url = models.URLField(max_length=2048, blank=True)

    status = models.CharField(max_length=16, choices=Status.choices)
    tier = models.CharField(max_length=16, choices=TIER_CHOICES)
    review_state = models.CharField(max_length=16, choices=ReviewState.choices, default=ReviewState.NONE)

    risk_score = models.FloatField()
    risk_reasons = models.JSONField(default=list)
    risk_probabilities = models.JSONField(default=dict, blank=True)
    model_version = models.CharField(max_length=100)
    policy_version = models.CharField(max_length=100, blank=True)
    routing_ms = models.FloatField(default=0)
    four_eyes = models.BooleanField(default=False)

    approved_payload = models.JSONField(null=True, blank=True)
    approved_payload_sha256 = models.CharField(max_length=64, blank=True)

    sla_due_at = models.DateTimeField(null=True, blank=True)
    # The escalation chain as it stood at submission: [{"due_at", "do", "group"}],
    # and when its next step is due (what the SLA sweeper scans).
    sla_chain = models.JSONField(default=list, blank=True)
    next_deadline_at = models.DateTimeField(null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    decision_by_label = models.CharField(
        max_length=150, blank=True, help_text="Who decided: a username, 'agent', 'sla' or 'kill_switch'."
    )
    decision_note = models.TextField(blank=True)

    # Reviewing: a short lease so two reviewers don't work one item, and
    # where a manual or SLA escalation sent it.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    escalated_to = models.CharField(max_length=80, blank=True, help_text="The group it was escalated to.")
    # The async tier's after-the-fact review.
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)

    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    outcome_detail = models.TextField(blank=True)
    outcome_at = models.DateTimeField(null=True, blank=True)
    # What the agent's client measured when it ran the tool (API.md, "Follow an action").
    outcome_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome_error_kind = models.CharField(max_length=64, blank=True)
    outcome_attempt = models.PositiveSmallIntegerField(null=True, blank=True)

    objects = ActionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["agent", "-created_at"], name="action_agent_recent"),
            models.Index(fields=["agent", "conversation_id"], name="action_conversation"),
            models.Index(fields=["action_type", "agent", "-created_at"], name="action_type_recent"),
            models.Index(fields=["status", "tier", "-created_at"], name="action_queue"),
            # The people columns are empty on most rows (every auto action):
            # partial indexes, so a submission adds no entry to them. They
            # serve the PROTECT checks when a user is deleted.
            *(
                models.Index(fields=[name], name=f"action_{name}", condition=models.Q(**{f"{name}__isnull": False}))
                for name in ("decided_by", "claimed_by", "reviewed_by")
            ),
            models.Index(fields=["sla_due_at"], name="action_pending_sla", condition=models.Q(status="pending")),
            models.Index(
                fields=["next_deadline_at"],
                name="action_next_deadline",
                condition=models.Q(next_deadline_at__isnull=False),
            ),
            # The dashboard's Async review and Escalated queues (and their nav
            # counts): the few open reviews among hundreds of thousands of rows.
            models.Index(
                fields=["created_at"],
                name="action_review_open",
                condition=models.Q(review_state="awaiting_review"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action_type} ({self.status})"

    def router_input(self, *, payload: dict[str, Any] | None = None) -> ActionInput:
        """The action as the risk router reads it (replays, labels, a reviewer's edit with `payload`)."""
        return ActionInput(
            action_type=self.action_type,
            payload=self.payload if payload is None else payload,
            summary=self.summary,
            tool=self.tool,
            rationale=self.rationale,
            agent=self.agent.name,
            context=self.context,
        )

    @property
    def is_open_blocking(self) -> bool:
        return self.status == Status.PENDING and self.tier == Tier.BLOCKING

    @property
    def is_open_async(self) -> bool:
        return (
            self.status == Status.APPROVED
            and self.tier == Tier.ASYNC_REVIEW
            and self.review_state == ReviewState.AWAITING_REVIEW
        )

    @property
    def is_open(self) -> bool:
        """Matches ActionQuerySet.open() (a test pins the two together)."""
        return self.is_open_blocking or self.is_open_async

    @property
    def is_escalated(self) -> bool:
        return self.is_open and bool(self.escalated_to)

    @property
    def may_execute(self) -> bool:
        return self.status == Status.APPROVED


class DecisionKind(models.TextChoices):
    APPROVE = "approve"
    EDIT_APPROVE = "edit_approve"
    REJECT = "reject"
    ESCALATE = "escalate"
    CONFIRM = "confirm"
    FLAG = "flag"


class Decision(models.Model):
    """Every human decision on an action, kept as it was made: four-eyes
    approvals count these, and the risk router learns from them."""

    action = models.ForeignKey(Action, on_delete=models.PROTECT, related_name="decisions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=DecisionKind.choices)
    note = models.TextField(blank=True)
    edited_payload = models.JSONField(null=True, blank=True)
    # An approval counts only for the exact payload it approved (four eyes).
    payload_sha256 = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the payload an approval approved (empty on other kinds)."
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["action", "created_at"], name="decision_action"),
            models.Index(fields=["user", "-created_at"], name="decision_user"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} by {self.user_id} on {self.action_id}"


class IdempotencyKey(models.Model):
    """One agent's key maps to one request body and the action it created."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    request_sha256 = models.CharField(max_length=64)
    action = models.ForeignKey(Action, on_delete=models.CASCADE)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "key"], name="idempotency_key_per_agent")]

    def __str__(self) -> str:
        return f"{self.key} → {self.action_id}"


class RateCounter(models.Model):
    """A fixed-window counter, used when no Redis cache is configured."""

    key = models.CharField(max_length=250, primary_key=True)
    count = models.PositiveIntegerField()
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"


class RefusalTally(models.Model):
    """Refusals of one agent's submissions (of one kind) within one window.

    The first refusal of a window is audited in full; the rest only count
    here, and a periodic fold writes one audit event per closed window: a
    flood of refusals can't grow the audit trail without bound.
    """

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=64)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0, help_text="Refusals after the first (which is audited).")
    sample = models.JSONField(default=dict, help_text="The latest refusal's details.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "kind", "window_start"], name="refusal_tally_window")]

    def __str__(self) -> str:
        return f"{self.kind} ({self.count + 1}) from {self.window_start:%Y-%m-%d %H:%M}"


class WaitSlot(models.Model):
    """One long-poll in progress, when no Redis holds the count: an agent
    gets at most WAIT_MAX_PER_AGENT of them at once. A slot its process never
    gave back (killed mid-wait) stops counting at `expires_at`."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"wait {self.pk} until {self.expires_at:%H:%M:%S}"


class KillSwitch(models.Model):
    scope = models.CharField(max_length=200, unique=True, help_text="global, agent:<name> or action_type:<pattern>")
    engaged = models.BooleanField(default=False)
    reason = models.TextField()
    changed_by = models.CharField(max_length=150)
    changed_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "kill switches"
        indexes = [models.Index(fields=["scope"], name="killswitch_engaged", condition=models.Q(engaged=True))]

    def __str__(self) -> str:
        return f"{self.scope} ({'engaged' if self.engaged else 'released'})"


class AuditEvent(models.Model):
    """Append-only, hash-chained history. On PostgreSQL a trigger refuses
    UPDATE, DELETE and TRUNCATE; `verify_audit` checks the chain."""

    seq = models.BigIntegerField(primary_key=True)
    created_at = models.DateTimeField()
    kind = models.CharField(max_length=64)
    actor = models.CharField(max_length=200)
    action = models.ForeignKey(Action, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events")
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    data = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["created_at"], name="audit_created")]
        # A constraint rather than unique=True, which on PostgreSQL also
        # builds a LIKE index that every append would pay for and nothing uses.
        constraints = [models.UniqueConstraint(fields=["hash"], name="audit_hash_unique")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind}"


ESCALATE, EXPIRE, ALERT_OPS = "escalate", "expire", "alert_ops"  # what an SLA step does


def steps_validate(steps: Any, *, tier: str) -> None:
    """The shape of an SLA policy's steps (the admin's form and the sweep trust it)."""
    if not isinstance(steps, list) or not steps:
        raise ValidationError({"steps": "a non-empty list of steps"})
    last = 0.0
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or set(step) - {"at", "do", "group"}:
            raise ValidationError({"steps": f"step {i + 1}: an object with at, do and optional group"})
        at = step.get("at")
        if not isinstance(at, int | float) or isinstance(at, bool) or at <= last:
            raise ValidationError({"steps": f"step {i + 1}: 'at' must be a number above the previous step's"})
        last = at
        if step.get("do") not in (ESCALATE, EXPIRE, ALERT_OPS):
            raise ValidationError({"steps": f"step {i + 1}: 'do' must be escalate, expire or alert_ops"})
        if step["do"] == EXPIRE and tier != Tier.BLOCKING:
            raise ValidationError({"steps": "only blocking actions expire"})
        if step["do"] == ESCALATE and not isinstance(step.get("group", Role.SENIOR_REVIEWER), str):
            raise ValidationError({"steps": f"step {i + 1}: 'group' must be a group name"})
        if step["do"] == EXPIRE and i != len(steps) - 1:
            raise ValidationError({"steps": "expire must be the last step"})


class SlaPolicy(models.Model):
    """An SLA and escalation chain for one tier, optionally only for action
    types matching a pattern. Without a matching row, the defaults in
    reviewqueue/sla.py apply (from REVIEWQUEUE_SLA_* settings)."""

    tier = models.CharField(max_length=16, choices=[(Tier.BLOCKING, "blocking"), (Tier.ASYNC_REVIEW, "async_review")])
    action_type_pattern = models.CharField(max_length=128, default="*", help_text="Shell-style, e.g. payments.*")
    sla = models.DurationField(help_text="e.g. 00:15:00")
    steps = models.JSONField(
        help_text='Steps at fractions of the SLA, e.g. [{"at": 0.5, "do": "escalate", "group": "senior_reviewer"}, '
        '{"at": 1, "do": "expire"}]. "do" is escalate, expire (blocking only) or alert_ops.'
    )
    priority = models.IntegerField(default=0, help_text="The matching policy with the highest priority wins.")

    class Meta:
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"
        ordering = ["tier", "-priority"]

    def __str__(self) -> str:
        return f"{self.tier} {self.action_type_pattern} ({self.sla})"

    def clean(self):
        steps_validate(self.steps, tier=self.tier)


class ChannelKind(models.TextChoices):
    EMAIL = "email"
    SLACK = "slack"
    WEBHOOK = "webhook"


class NotificationChannel(models.Model):
    """Where a group hears about the events it subscribed to."""

    name = models.CharField(max_length=100, unique=True)
    group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, related_name="notification_channels")
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    target = models.CharField(
        max_length=2048,
        blank=True,
        help_text="Webhook or Slack URL; for email, addresses (comma-separated) or blank for the group's members.",
    )
    events = models.JSONField(
        default=list, help_text='Event patterns, e.g. ["action.escalated", "action.expired", "kill_switch.*"]'
    )
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.kind} for {self.group})"

    def clean(self):
        """A Slack or webhook URL must be one the service may call (no credentials, not inward)."""

        from reviewqueue.core.netguard import UnsafeURL, check_url

        if self.kind != ChannelKind.EMAIL:
            try:
                check_url(self.target)
            except UnsafeURL as exc:
                raise ValidationError({"target": str(exc)}) from None


class OutboxStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class OutboxMessage(models.Model):
    """A notification or agent webhook, written in the transaction of the event
    that causes it and delivered (with retries) by the worker."""

    event = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, help_text="agent_webhook, email, slack or webhook")
    endpoint = models.CharField(max_length=2048, help_text="URL, or comma-separated addresses for email")
    action = models.ForeignKey(Action, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    channel = models.ForeignKey(NotificationChannel, null=True, blank=True, on_delete=models.SET_NULL)
    body = models.JSONField()
    status = models.CharField(max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["next_attempt_at"], name="outbox_due", condition=models.Q(status="pending")),
            models.Index(fields=["status", "-created_at"], name="outbox_status"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.kind} {self.endpoint[:60]} ({self.status})"


class CircuitBreaker(models.Model):
    """Per endpoint: opens after repeated failures, then lets one probe through."""

    endpoint = models.CharField(max_length=300, primary_key=True, help_text="scheme://host:port")
    failures = models.JSONField(default=list, help_text="Times of recent failures (ISO).")
    open_until = models.DateTimeField(null=True, blank=True)
    probe_started_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.endpoint
