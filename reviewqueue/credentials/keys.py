"""API keys of agents and users: issue, authenticate, rotate, revoke.

The plaintext key exists only in the return value of the issuing call; the
table holds its SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from reviewqueue.audit.trail import audit_append
from reviewqueue.core.errors import Unauthenticated
from reviewqueue.models import Agent, ApiKey

AGENT_PREFIX, USER_PREFIX = "rqa_", "rqu_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key(prefix: str) -> tuple[str, str, str]:
    key = prefix + secrets.token_urlsafe(32)
    return key, key[:12], _hash(key)


@dataclass(frozen=True)
class Principal:
    """Who a bearer token belongs to: exactly one of agent or user."""

    agent: Agent | None = None
    user: User | None = None
    key_hash: str = ""
    agent_version: str = ""  # the agent row's xmin on PostgreSQL: any change to the agent changes it
    remembered: bool = False  # from this process's memory of keys, not yet confirmed by the database

    @property
    def label(self) -> str:
        if self.agent:
            return f"agent:{self.agent.name}"
        if self.user is None:
            raise ValueError("a Principal names an agent or a user")
        return f"user:{self.user.get_username()}"


class CredentialsChanged(Exception):
    """A remembered key was revoked or expired, or its agent changed, since this process read them."""


# The agent's columns every agent request needs; the rest load on access.
_AGENT_COLUMNS = ("id", "name", "scopes", "rate_limit_per_minute", "conversation_rate_limit_per_minute", "is_active")


@cache
def _key_sql(vendor: str) -> str:
    """Every agent request that does not remember its key runs this: one
    indexed lookup, written out because compiling the ORM's query cost more
    CPU than running it. On PostgreSQL it also reads the agent row's xmin,
    which any change to the row changes."""
    version = "a.xmin::text" if vendor == "postgresql" else "''"
    # Constant pieces only: the key's hash and the time are parameters.
    return (
        f"SELECT k.user_id, k.expires_at, {version}, {', '.join(f'a.{name}' for name in _AGENT_COLUMNS)}"  # noqa: S608
        " FROM reviewqueue_apikey k LEFT JOIN reviewqueue_agent a ON a.id = k.agent_id"
        " WHERE k.key_hash = %s AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > %s)"
    )


def authenticate_key(raw: str, *, remembered_ok: bool = False) -> Principal | None:
    """The live principal behind a key, or None for unknown, revoked or expired keys.

    With `remembered_ok`, an agent key this process read in the last
    KEY_MEMORY_SECONDS may come from memory, marked `remembered`: only for a
    caller that confirms it before acting on it (KeyCheck), since the key may
    have been revoked since.
    """
    if not raw or len(raw) > 200:
        return None
    digest = _hash(raw)
    if remembered_ok and (principal := _recall(digest)):
        return principal
    return _authenticate_hash(digest)


class KeyCheck:
    """A principal from this process's memory of keys, until the database
    confirms it. The submit write checks `pending` in its own statement
    (`confirmed_by_write` after); before any other answer, `confirm()` reads
    the key again: the one place a remembered key is confirmed."""

    def __init__(self, principal: Principal):
        self.principal = principal
        self.pending: Principal | None = principal if principal.remembered else None

    def confirm(self) -> Agent:
        """The agent as the database has it now, or Unauthenticated if the key
        was revoked or expired or its agent deactivated."""
        if self.pending is not None:
            fresh = _authenticate_hash(self.pending.key_hash)
            if fresh is None or fresh.agent is None:
                raise Unauthenticated()
            self.principal, self.pending = fresh, None
        if self.principal.agent is None:  # never: only agents' keys are remembered
            raise Unauthenticated()
        return self.principal.agent

    def confirmed_by_write(self) -> None:
        """The submit function checked the key (live, agent unchanged) in the statement that wrote."""
        self.pending = None


def live_key_hashes(digests: set[str]) -> set[str]:
    """Which of these agent key hashes still authenticate (live key, active agent)."""
    now = timezone.now()
    return set(
        ApiKey.objects.filter(key_hash__in=digests, revoked_at__isnull=True, agent__is_active=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values_list("key_hash", flat=True)
    )


def principal_reread(principal: Principal) -> Principal | None:
    """The principal behind the same key, as the database has it now."""
    return _authenticate_hash(principal.key_hash)


def _authenticate_hash(digest: str) -> Principal | None:
    with connection.cursor() as cursor:
        cursor.execute(_key_sql(connection.vendor), [digest, connection.ops.adapt_datetimefield_value(timezone.now())])
        row = cursor.fetchone()
    if row is None:
        _memory.pop(digest, None)
        return None
    user_id = row[0]
    if user_id is not None:
        user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
        return Principal(user=user, key_hash=digest) if user else None
    values = [_from_db(Agent._meta.get_field(name), value) for name, value in zip(_AGENT_COLUMNS, row[3:], strict=True)]
    principal = _agent_principal(digest, values, version=row[2])
    if principal is None:
        _memory.pop(digest, None)
    elif connection.vendor == "postgresql" and KEY_MEMORY_SECONDS > 0:
        if len(_memory) >= 10_000:
            _memory.clear()
        _memory[digest] = _Remembered(time.monotonic(), row[1], row[2], values)
    return principal


def _from_db(field, value):
    """A column's value as the ORM would return it (JSON text decoded, etc.)."""
    if value is not None and hasattr(field, "from_db_value"):
        return field.from_db_value(value, None, connection)
    return value


def _agent_principal(digest: str, values: list, *, version: str, remembered: bool = False) -> Principal | None:
    """A fresh Agent per call (a model instance is not shared between request
    threads), from the key query's agent columns as the ORM reads them."""
    agent = Agent.from_db(connection.alias, _AGENT_COLUMNS, [list(v) if type(v) is list else v for v in values])
    if not agent.is_active:
        return None
    return Principal(agent=agent, key_hash=digest, agent_version=version, remembered=remembered)


# On PostgreSQL a submission need not read its key first: the agent keys this
# process authenticated lately are remembered (key hash → what the key query
# gave), and the submission's own write checks, in the same statement, that
# the key is still live and the agent row unchanged. Other requests read
# their key every time.
KEY_MEMORY_SECONDS = 30


@dataclass(frozen=True)
class _Remembered:
    read_at: float  # time.monotonic()
    expires_at: datetime | None
    agent_version: str
    values: list  # _AGENT_COLUMNS


_memory: dict[str, _Remembered] = {}


def _recall(digest: str) -> Principal | None:
    entry = _memory.get(digest)
    if entry is None:
        return None
    if time.monotonic() - entry.read_at > KEY_MEMORY_SECONDS or (
        entry.expires_at is not None and entry.expires_at <= timezone.now()
    ):
        _memory.pop(digest, None)
        return None
    return _agent_principal(digest, entry.values, version=entry.agent_version, remembered=True)


@transaction.atomic
def agent_key_issue(*, agent: Agent, actor: str, grace: timedelta | None = None) -> str:
    """A new key for the agent. Existing keys stop working after `grace`
    (at once when None), so a rotation can be rolled out without downtime."""
    now = timezone.now()
    live = agent.keys.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    rotated = list(live.values_list("prefix", flat=True))
    if grace:
        live.update(expires_at=now + grace)
    else:
        live.update(revoked_at=now)
    key, prefix, digest = _new_key(AGENT_PREFIX)
    ApiKey.objects.create(agent=agent, prefix=prefix, key_hash=digest)
    audit_append(
        kind="agent.key_issued",
        actor=actor,
        agent=agent,
        data={"prefix": prefix, "replaces": rotated, "grace_seconds": int(grace.total_seconds()) if grace else 0},
    )
    return key


@transaction.atomic
def agent_keys_revoke(*, agent: Agent, actor: str) -> int:
    """Revoke every key of the agent at once; it can no longer authenticate."""
    prefixes = list(agent.keys.filter(revoked_at__isnull=True).values_list("prefix", flat=True))
    agent.keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
    audit_append(kind="agent.keys_revoked", actor=actor, agent=agent, data={"prefixes": prefixes})
    return len(prefixes)


# Every write of an agent, from the command or the admin, goes through here and is audited.
AUDITED_FIELDS = (
    "name",
    "description",
    "scopes",
    "rate_limit_per_minute",
    "conversation_rate_limit_per_minute",
    "is_active",
)


def agent_create(
    *,
    name: str,
    scopes: list[str],
    actor: str,
    rate_limit_per_minute: int | None = None,
    conversation_rate_limit_per_minute: int | None = None,
    description: str = "",
) -> tuple[Agent, str]:
    """Create an agent and its first key; the key is returned once, never stored."""
    agent = Agent(name=name, scopes=scopes, description=description)
    if rate_limit_per_minute is not None:
        agent.rate_limit_per_minute = rate_limit_per_minute
    if conversation_rate_limit_per_minute is not None:
        agent.conversation_rate_limit_per_minute = conversation_rate_limit_per_minute
    return agent, agent_add(agent=agent, actor=actor)


@transaction.atomic
def agent_add(*, agent: Agent, actor: str) -> str:
    """Save a new agent (built by the command or the admin's form), audit it, and return its first key."""
    agent.full_clean()
    agent.save()
    audit_append(
        kind="agent.created", actor=actor, agent=agent, data={field: getattr(agent, field) for field in AUDITED_FIELDS}
    )
    return agent_key_issue(agent=agent, actor=actor)


@transaction.atomic
def agent_change(*, agent: Agent, actor: str) -> dict[str, list]:
    """Save an edited agent and audit what changed ({field: [before, after]}).

    A scope or activity change takes effect on the agent's very next request:
    keys a process remembers are checked against the agent row's version.
    """
    agent.full_clean()
    before = Agent.objects.select_for_update().values(*AUDITED_FIELDS).get(pk=agent.pk)
    changed = {
        field: [before[field], getattr(agent, field)]
        for field in AUDITED_FIELDS
        if before[field] != getattr(agent, field)
    }
    agent.save()
    if changed:
        audit_append(kind="agent.changed", actor=actor, agent=agent, data={"changed": changed})
    return changed


@transaction.atomic
def agent_owners_set(*, agent: Agent, owner_ids: set[int], actor: str) -> None:
    """Replace the agent's owners (who may not decide its actions), audited when they change."""
    before = set(agent.owners.values_list("pk", flat=True))
    if before == owner_ids:
        return
    agent.owners.set(owner_ids)
    audit_append(
        kind="agent.owners_changed",
        actor=actor,
        agent=agent,
        data={"before": sorted(before), "after": sorted(owner_ids)},
    )


@transaction.atomic
def user_token_issue(*, user: User, actor: str) -> str:
    """A new API token for a user (for the ops API); earlier tokens are revoked."""
    now = timezone.now()
    user.api_keys.filter(revoked_at__isnull=True).update(revoked_at=now)
    key, prefix, digest = _new_key(USER_PREFIX)
    ApiKey.objects.create(user=user, prefix=prefix, key_hash=digest)
    audit_append(kind="user.token_issued", actor=actor, data={"user": user.get_username(), "prefix": prefix})
    return key


# ------------------------------------------------------- webhook secrets ---


def _webhook_secret_new() -> str:
    return secrets.token_hex(32)


def webhook_secrets_live(agent: Agent, now: datetime | None = None) -> list[str]:
    """The secrets a delivery is signed with now: the current one, then the
    previous one while its grace period runs (Standard Webhooks allows several
    signatures, so receivers on either secret verify)."""
    now = now or timezone.now()
    live = [agent.webhook_secret]
    until = agent.webhook_secret_previous_until
    if agent.webhook_secret_previous and until is not None and until > now:
        live.append(agent.webhook_secret_previous)
    return live


@transaction.atomic
def agent_webhook_secret_rotate(*, agent: Agent, actor: str, grace: timedelta | None = None) -> str:
    """A new webhook secret for the agent, returned once. With `grace`, the
    old secret still signs deliveries (beside the new one) until it runs out,
    so receivers can switch without missing a webhook; without, it stops now."""
    now = timezone.now()
    new = _webhook_secret_new()
    current = Agent.objects.select_for_update().values_list("webhook_secret", flat=True).get(pk=agent.pk)
    Agent.objects.filter(pk=agent.pk).update(
        webhook_secret=new,
        webhook_secret_previous=current if grace else "",
        webhook_secret_previous_until=now + grace if grace else None,
    )
    agent.refresh_from_db(fields=["webhook_secret", "webhook_secret_previous", "webhook_secret_previous_until"])
    audit_append(
        kind="agent.webhook_secret_rotated",
        actor=actor,
        agent=agent,
        data={"grace_seconds": int(grace.total_seconds()) if grace else 0},
    )
    return new
