"""The audit trail: every event is appended here, hash-chained, never changed.

Each event's hash is SHA-256 over the previous event's hash and the canonical
JSON of the event, so editing or dropping any row breaks every later hash.

Whoever can write to the database can still rewrite the whole chain
consistently, or drop its newest events. So the chain's head is also signed
into checkpoints OUTSIDE the database (an append-only JSON Lines file, HMAC
under a key the database never sees): verifying and exporting compare the
chain with every checkpoint, and a checkpoint with a bad signature is itself
reported.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from reviewqueue.core.canonical import canonical_json
from reviewqueue.core.jsonbody import json_bytes
from reviewqueue.models import Action, Agent, AuditEvent

GENESIS_HASH = "0" * 64

logger = logging.getLogger(__name__)


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
    *,
    kind: str,
    actor: str,
    action: Action | None = None,
    agent: Agent | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event; must run inside the transaction of the change it records."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_append must run inside the transaction of the change it records")
    event = new_event(kind=kind, actor=actor, action=action, agent=agent, data=data, at=at)
    if connection.vendor == "postgresql":
        # The append is a function (reviewqueue/sql/reviewqueue_audit_append.sql):
        # it takes the chain lock, reads the tail and hashes in one statement.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT seq, prev_hash, hash FROM reviewqueue_audit_append(%s::jsonb, %s)",
                [json_bytes(event_row(event)).decode(), chain_prefix(event)],
            )
            appended(event, cursor.fetchone())
        return event
    # SQLite serialises writers already (our transactions start IMMEDIATE).
    tail = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    event.seq, event.prev_hash = (tail[0] + 1, tail[1]) if tail else (1, GENESIS_HASH)
    event.hash = chain_hash(event.prev_hash, _body(event))
    event.save(force_insert=True)
    return event


def event_row(event: AuditEvent) -> dict[str, Any]:
    """The event as reviewqueue_audit_append takes it: a JSON object of the
    columns it reads (the function computes seq, prev_hash and hash)."""
    return {
        "created_at": event.created_at.isoformat(),
        "kind": event.kind,
        "actor": event.actor,
        "action_id": str(event.action_id) if event.action_id else None,
        "agent_id": event.agent_id,
        "data": event.data,
    }


def _body(event: AuditEvent) -> dict:
    return event_body(
        seq=event.seq,
        created_at=event.created_at,
        kind=event.kind,
        actor=event.actor,
        action_id=event.action_id,
        agent_id=event.agent_id,
        data=event.data,
    )


def chain_prefix(event: AuditEvent) -> str:
    """PostgreSQL computes chain_hash() itself, from the tail's hash, this
    prefix, the new seq and "}": "seq" sorts last among the body's keys."""
    event.seq = 0  # a placeholder: the body's other keys give the prefix
    canonical = canonical_json(_body(event))
    if not canonical.endswith(',"seq":0}'):  # checked under -O too: a wrong prefix would corrupt the chain
        raise RuntimeError("seq must be the last key of the canonical body")
    return canonical[: -len("0}")]


def appended(event: AuditEvent, row: tuple) -> None:
    """Take what the append returned: (seq, prev_hash, hash)."""
    event.seq, event.prev_hash, event.hash = row
    event._state.adding, event._state.db = False, connection.alias


def new_event(
    *,
    kind: str,
    actor: str,
    action: Action | None = None,
    agent: Agent | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """An event to append (audit_append's arguments), not yet in the chain."""
    agent = agent or (action.agent if action else None)
    return AuditEvent(
        created_at=at or timezone.now(), kind=kind, actor=actor, action=action, agent=agent, data=data or {}
    )


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


# Checkpoints of the chain's head, signed, outside the database.


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str  # when it was written (ISO-8601, UTC)
    line: int = 0  # its line in the file, for messages

    def describe(self) -> str:
        return f"the signed checkpoint of {self.at} (line {self.line} of {checkpoint_path()})"


@dataclass
class CheckpointLog:
    """The checkpoints read back: those whose signature holds, and the line
    numbers of those whose signature doesn't (forged, or another key's)."""

    valid: list[Checkpoint] = field(default_factory=list)
    forged: list[int] = field(default_factory=list)

    @property
    def newest(self) -> Checkpoint | None:
        return max(self.valid, key=lambda checkpoint: checkpoint.seq, default=None)


def checkpoint_path() -> Path:
    path: Path = settings.REVIEWQUEUE["AUDIT_CHECKPOINT_PATH"]
    return Path(path)


def _signature(*, seq: int, digest: str, at: str) -> str:
    message = canonical_json({"at": at, "hash": digest, "seq": seq}).encode()
    key: str = settings.REVIEWQUEUE["AUDIT_CHECKPOINT_KEY"]
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _parse_checkpoint(text: str, line: int) -> Checkpoint | None:
    """The checkpoint on one line, or None if it is malformed or its signature fails."""
    try:
        record = json.loads(text)
        seq, digest, at, signature = record["seq"], record["hash"], record["at"], record["sig"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (type(seq) is int and isinstance(digest, str) and isinstance(at, str) and isinstance(signature, str)):
        return None
    if not hmac.compare_digest(_signature(seq=seq, digest=digest, at=at), signature):
        return None
    return Checkpoint(seq=seq, hash=digest, at=at, line=line)


def checkpoints_read() -> CheckpointLog:
    """Every checkpoint in the file (none if there is no file yet)."""
    log = CheckpointLog()
    try:
        with checkpoint_path().open("rb") as lines:
            fcntl.flock(lines, fcntl.LOCK_SH)  # never half a line being appended
            for number, raw in enumerate(lines, 1):
                text = raw.decode("utf-8", "replace").strip()
                if not text:
                    continue
                checkpoint = _parse_checkpoint(text, number)
                if checkpoint:
                    log.valid.append(checkpoint)
                else:
                    log.forged.append(number)
    except FileNotFoundError:
        pass
    return log


def _checkpoint_newest(tail_bytes: int = 65536) -> Checkpoint | None:
    """The newest valid checkpoint among the file's last lines (the file only grows)."""
    try:
        with checkpoint_path().open("rb") as file:
            fcntl.flock(file, fcntl.LOCK_SH)
            size = file.seek(0, os.SEEK_END)
            file.seek(max(size - tail_bytes, 0))
            lines = file.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return None
    if size > tail_bytes:
        lines = lines[1:]  # the first may be cut
    found = [checkpoint for text in lines if text.strip() and (checkpoint := _parse_checkpoint(text.strip(), 0))]
    return max(found, key=lambda checkpoint: checkpoint.seq, default=None)


def checkpoint_append(*, seq: int, digest: str) -> Checkpoint:
    """Sign (seq, hash) of a verified head and append it: one locked write of one line."""
    at = timezone.now().astimezone(UTC).isoformat()
    line = canonical_json({"at": at, "hash": digest, "seq": seq, "sig": _signature(seq=seq, digest=digest, at=at)})
    path = checkpoint_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        file.write(line + "\n")
        file.flush()
        os.fsync(file.fileno())
    return Checkpoint(seq=seq, hash=digest, at=at)


class ChainWalk:
    """Checks events in seq order from a trusted point: each must follow the
    one before, match its own hash, and match any signed checkpoint of its seq.
    Records the first break; `finish` also catches a trail cut short."""

    def __init__(self, checkpoints: CheckpointLog | None = None, *, seq: int = 0, prev_hash: str = GENESIS_HASH):
        self.checked = 0
        self.resume(seq=seq, prev_hash=prev_hash)
        self.head: AuditEvent | None = None
        self.broken: ChainBreak | None = None
        self.newest = checkpoints.newest if checkpoints else None
        self._vouched: dict[int, Checkpoint] = {}
        for checkpoint in checkpoints.valid if checkpoints else []:
            self._vouched.setdefault(checkpoint.seq, checkpoint)

    def resume(self, *, seq: int, prev_hash: str) -> None:
        """Start after event #seq, taking its hash on trust (the checkpoints still apply)."""
        self.expected_seq, self.prev_hash = seq + 1, prev_hash

    def check(self, event: AuditEvent) -> bool:
        """True while the chain holds (False from its first break on)."""
        if self.broken:
            return False
        self.head = event
        if event.seq != self.expected_seq:
            self.broken = ChainBreak(self.expected_seq, f"event #{self.expected_seq} is missing (next is #{event.seq})")
        elif event.prev_hash != self.prev_hash:
            self.broken = ChainBreak(event.seq, "its prev_hash does not match the hash of the event before it")
        elif chain_hash(self.prev_hash, _body(event)) != event.hash:
            self.broken = ChainBreak(event.seq, "its contents do not match its hash")
        elif (vouched := self._vouched.get(event.seq)) and vouched.hash != event.hash:
            self.broken = ChainBreak(
                event.seq, f"its hash differs from {vouched.describe()}: the chain up to it was rewritten"
            )
        if self.broken:
            return False
        self.prev_hash, self.expected_seq, self.checked = event.hash, event.seq + 1, self.checked + 1
        return True

    def finish(self) -> ChainBreak | None:
        """The first break, or the trail ending before an event a checkpoint vouches for."""
        if self.broken or not self.newest:
            return self.broken
        tail = self.head.seq if self.head else _tail_seq()
        if tail < self.newest.seq:
            self.broken = ChainBreak(
                tail + 1,
                f"the trail ends at event #{tail} but {self.newest.describe()} "
                f"vouches for event #{self.newest.seq}: the newest events were deleted",
            )
        return self.broken


def _tail_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def audit_check(*, checkpoints: CheckpointLog | None = None, batch_size: int = 2000) -> ChainWalk:
    """Walk the whole chain against the checkpoints (read from the file unless given)."""
    walk = ChainWalk(checkpoints_read() if checkpoints is None else checkpoints)
    for event in _iterate(batch_size):
        if not walk.check(event):
            break
    walk.finish()
    return walk


def audit_verify(*, batch_size: int = 2000) -> tuple[int, ChainBreak | None]:
    """Walk the whole chain in order; return the count checked and the first break."""
    walk = audit_check(batch_size=batch_size)
    return walk.checked, walk.broken


def audit_checkpoint(*, batch_size: int = 2000) -> Checkpoint | None:
    """Check the events since the newest checkpoint and sign the new head
    (Celery beat runs this every minute). A break is logged, never signed."""
    start = _checkpoint_newest()
    walk = ChainWalk()
    if start:
        event = AuditEvent.objects.filter(seq=start.seq).first()
        if event is None or event.hash != start.hash:
            logger.error(
                "audit trail: event #%s %s the newest signed checkpoint (%s); run verify_audit",
                start.seq,
                "is missing, yet is vouched for by" if event is None else "differs from",
                start.at,
            )
            return None
        walk = ChainWalk(seq=start.seq, prev_hash=start.hash)
    for event in _iterate(batch_size, after=start.seq if start else 0):
        if not walk.check(event):
            broken = walk.broken
            if broken is None:  # check() answers False only after recording the break
                raise RuntimeError("ChainWalk.check failed without recording a break")
            logger.error("audit trail broken at event #%s: %s; run verify_audit", broken.seq, broken.problem)
            return None
    if walk.head is None:
        return None  # nothing new since the newest checkpoint
    return checkpoint_append(seq=walk.head.seq, digest=walk.head.hash)


def _iterate(batch_size: int, after: int = 0) -> Iterator[AuditEvent]:
    last = after
    while True:
        batch = list(AuditEvent.objects.filter(seq__gt=last).order_by("seq")[:batch_size])
        if not batch:
            return
        yield from batch
        last = batch[-1].seq


def audit_export(*, since: datetime | None = None, walk: ChainWalk | None = None) -> Iterator[dict]:
    """Events as plain dicts in chain order, with their hashes, for JSON Lines:
    all of them, or those recorded at or after `since`. A given walk checks
    every event from the first of those on (its start is that one's link)."""
    after = 0
    if since:
        first = AuditEvent.objects.filter(created_at__gte=since).order_by("seq").values_list("seq", "prev_hash")[:1]
        if not first:
            return
        after = first[0][0] - 1
        if walk:
            walk.resume(seq=after, prev_hash=first[0][1])
    for event in _iterate(2000, after=after):
        if walk:
            walk.check(event)
        if since is None or event.created_at >= since:
            yield {**_body(event), "prev_hash": event.prev_hash, "hash": event.hash}
