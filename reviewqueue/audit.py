"""The audit trail: every event is appended here, hash-chained, never changed.

Each event's hash is SHA-256 over the previous event's hash and the canonical
JSON of the event, so editing or dropping any row breaks every later hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.db import connection
from django.utils import timezone

from . import rawsql
from .canonical import canonical_json
from .models import Action, Agent, AuditEvent

GENESIS_HASH = "0" * 64


def event_body(*, seq: int, created_at: datetime, kind: str, actor: str, action_id, agent_id, data) -> dict:
    return {
        "seq": seq,
        "created_at": created_at.astimezone(UTC).isoformat(),
        "kind": kind,
        "actor": actor,
        "action_id": str(action_id) if action_id else None,
        "agent_id": agent_id,
        "data": data,
    }


def chain_hash(prev_hash: str, body: dict) -> str:
    return hashlib.sha256((prev_hash + canonical_json(body)).encode()).hexdigest()


def audit_append(
    *, kind: str, actor: str, action: Action | None = None, agent: Agent | None = None,
    data: dict[str, Any] | None = None, at: datetime | None = None,
) -> AuditEvent:
    """Append one event; must run inside the transaction of the change it records."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_append must run inside the transaction of the change it records")
    event = new_event(kind=kind, actor=actor, action=action, agent=agent, data=data, at=at)
    if connection.vendor == "postgresql":
        with rawsql.cursor() as cursor:  # the append is a function (migration 0007)
            cursor.execute("SELECT seq, prev_hash, hash FROM reviewqueue_audit_append(%s, %s)",
                           [rawsql.row_json(event), chain_prefix(event)])
            appended(event, cursor.fetchone())
        return event
    # SQLite serialises writers already (our transactions start IMMEDIATE).
    with connection.cursor() as cursor:
        cursor.execute(_tail_sql())
        tail = cursor.fetchone()
    event.seq, event.prev_hash = (tail[0] + 1, tail[1]) if tail else (1, GENESIS_HASH)
    event.hash = chain_hash(event.prev_hash, _body(event))
    return rawsql.insert(event)


def _body(event: AuditEvent) -> dict:
    return event_body(
        seq=event.seq, created_at=event.created_at, kind=event.kind, actor=event.actor,
        action_id=event.action_id, agent_id=event.agent_id, data=event.data,
    )


def chain_prefix(event: AuditEvent) -> str:
    """PostgreSQL computes chain_hash() itself, from the tail's hash, this
    prefix, the new seq and "}": "seq" sorts last among the body's keys."""
    event.seq = 0  # a placeholder: the body's other keys give the prefix
    canonical = canonical_json(_body(event))
    assert canonical.endswith(',"seq":0}'), "seq must be the last key of the canonical body"
    return canonical[: -len("0}")]


def appended(event: AuditEvent, row: tuple) -> None:
    """Take what the append returned: (seq, prev_hash, hash)."""
    event.seq, event.prev_hash, event.hash = row
    event._state.adding, event._state.db = False, connection.alias


def new_event(
    *, kind: str, actor: str, action: Action | None = None, agent: Agent | None = None,
    data: dict[str, Any] | None = None, at: datetime | None = None,
) -> AuditEvent:
    """An event to append (audit_append's arguments), not yet in the chain."""
    agent = agent or (action.agent if action else None)
    return rawsql.unsaved(
        AuditEvent, created_at=at or timezone.now(), kind=kind, actor=actor, action=action, agent=agent,
        data=data or {},
    )


@cache
def _tail_sql() -> str:
    seq, digest = rawsql.column(AuditEvent, "seq"), rawsql.column(AuditEvent, "hash")
    return f"SELECT {seq}, {digest} FROM {rawsql.table(AuditEvent)} ORDER BY {seq} DESC LIMIT 1"


def audit_append_many(events: list[dict[str, Any]]) -> None:
    """Append many events (keyword arguments of audit_append) under one lock."""
    if not events:
        return
    first = audit_append(**events[0])
    seq, prev_hash, rows = first.seq, first.hash, []
    for event in events[1:]:
        seq += 1
        row = new_event(**event)
        row.seq, row.prev_hash = seq, prev_hash
        row.hash = prev_hash = chain_hash(prev_hash, _body(row))
        rows.append(row)
    AuditEvent.objects.bulk_create(rows, batch_size=1000)


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    problem: str


def audit_verify(*, batch_size: int = 2000) -> tuple[int, ChainBreak | None]:
    """Walk the whole chain in order; return the count checked and the first break."""
    prev_hash, expected_seq, checked = GENESIS_HASH, 1, 0
    for event in _iterate(batch_size):
        if event.seq != expected_seq:
            return checked, ChainBreak(expected_seq, f"event #{expected_seq} is missing (next is #{event.seq})")
        if event.prev_hash != prev_hash:
            return checked, ChainBreak(event.seq, "its prev_hash does not match the hash of the event before it")
        body = event_body(
            seq=event.seq, created_at=event.created_at, kind=event.kind, actor=event.actor,
            action_id=event.action_id, agent_id=event.agent_id, data=event.data,
        )
        if chain_hash(prev_hash, body) != event.hash:
            return checked, ChainBreak(event.seq, "its contents do not match its hash")
        prev_hash, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    return checked, None


def _iterate(batch_size: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        batch = list(AuditEvent.objects.filter(seq__gt=last).order_by("seq")[:batch_size])
        if not batch:
            return
        yield from batch
        last = batch[-1].seq


def audit_export(*, since: datetime | None = None) -> Iterator[dict]:
    """Events as plain dicts in chain order, with their hashes, for JSON Lines."""
    last = 0
    while True:
        query = AuditEvent.objects.filter(seq__gt=last).order_by("seq")
        if since:
            query = query.filter(created_at__gte=since)
        batch = list(query[:2000])
        if not batch:
            return
        for event in batch:
            yield {
                **event_body(
                    seq=event.seq, created_at=event.created_at, kind=event.kind, actor=event.actor,
                    action_id=event.action_id, agent_id=event.agent_id, data=event.data,
                ),
                "prev_hash": event.prev_hash,
                "hash": event.hash,
            }
        last = batch[-1].seq
