"""API keys of agents and users: issue, authenticate, rotate, revoke.

The plaintext key exists only in the return value of the issuing call; the
table holds its SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import rawsql
from .audit import audit_append
from .models import Agent, ApiKey

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
    user: AbstractBaseUser | None = None

    @property
    def label(self) -> str:
        return f"agent:{self.agent.name}" if self.agent else f"user:{self.user.get_username()}"


# The agent's columns every agent request needs; the rest load on access.
_AGENT_COLUMNS = ("id", "name", "scopes", "rate_limit_per_minute", "conversation_rate_limit_per_minute", "is_active")


@cache
def _key_sql() -> str:
    agent_columns = ", ".join(f"a.{rawsql.column(Agent, name)}" for name in _AGENT_COLUMNS)
    return (
        f"SELECT k.{rawsql.column(ApiKey, 'user')}, {agent_columns}"
        f" FROM {rawsql.table(ApiKey)} k LEFT JOIN {rawsql.table(Agent)} a"
        f" ON a.{rawsql.column(Agent, 'id')} = k.{rawsql.column(ApiKey, 'agent')}"
        f" WHERE k.{rawsql.column(ApiKey, 'key_hash')} = %s AND k.{rawsql.column(ApiKey, 'revoked_at')} IS NULL"
        f" AND (k.{rawsql.column(ApiKey, 'expires_at')} IS NULL OR k.{rawsql.column(ApiKey, 'expires_at')} > %s)"
    )


def authenticate_key(raw: str) -> Principal | None:
    """The live principal behind a key, or None for unknown, revoked or expired keys."""
    if not raw or len(raw) > 200:
        return None
    # Every agent request runs this: one hand-written indexed lookup (see rawsql).
    with rawsql.cursor() as cursor:
        cursor.execute(_key_sql(), [_hash(raw), rawsql.datetime_param(timezone.now())])
        row = cursor.fetchone()
    if row is None:
        return None
    user_id, agent_row = row[0], row[1:]
    if user_id is not None:
        user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
        return Principal(user=user) if user else None
    values = [rawsql.from_db(Agent._meta.get_field(name), value) for name, value in zip(_AGENT_COLUMNS, agent_row)]
    agent = Agent.from_db(connection.alias, _AGENT_COLUMNS, values)
    return Principal(agent=agent) if agent.is_active else None


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
        kind="agent.key_issued", actor=actor, agent=agent,
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


@transaction.atomic
def agent_create(
    *, name: str, scopes: list[str], actor: str, rate_limit_per_minute: int | None = None,
    conversation_rate_limit_per_minute: int | None = None, description: str = "",
) -> tuple[Agent, str]:
    """Create an agent and its first key; the key is returned once, never stored."""
    agent = Agent(name=name, scopes=scopes, description=description)
    if rate_limit_per_minute is not None:
        agent.rate_limit_per_minute = rate_limit_per_minute
    if conversation_rate_limit_per_minute is not None:
        agent.conversation_rate_limit_per_minute = conversation_rate_limit_per_minute
    agent.full_clean()
    agent.save()
    audit_append(kind="agent.created", actor=actor, agent=agent, data={"name": name, "scopes": scopes})
    return agent, agent_key_issue(agent=agent, actor=actor)


@transaction.atomic
def user_token_issue(*, user: AbstractBaseUser, actor: str) -> str:
    """A new API token for a user (for the ops API); earlier tokens are revoked."""
    now = timezone.now()
    user.api_keys.filter(revoked_at__isnull=True).update(revoked_at=now)
    key, prefix, digest = _new_key(USER_PREFIX)
    ApiKey.objects.create(user=user, prefix=prefix, key_hash=digest)
    audit_append(kind="user.token_issued", actor=actor, data={"user": user.get_username(), "prefix": prefix})
    return key
