"""Django glue: which model and policy route in this process, and how they change.

A process keeps one `Router`. At most every RISKROUTER_REFRESH_SECONDS (5 s by
default) one caller looks up the active model's version and the policy rules
(two small queries); only a changed version is loaded. So a promotion reaches
every web process within a few seconds without a query per route, and a
promotion in this process (`promote`) takes effect at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from .model import ModelConfig, RiskModel
from .policy import Policy, build_policy, rule_problem
from .router import Router

log = logging.getLogger(__name__)

DEFAULT_COMPANY_DOMAINS = ("acme.example",)
DEFAULT_REFRESH_SECONDS = 5.0


def company_domains() -> tuple[str, ...]:
    return tuple(getattr(settings, "RISKROUTER_COMPANY_DOMAINS", None) or DEFAULT_COMPANY_DOMAINS)


def model_config() -> ModelConfig:
    """The training recipe, with this deployment's company domains."""
    return ModelConfig(company_domains=company_domains())


def current_policy() -> Policy:
    """Defaults in code, overlaid by the admin's rules, with the configured company domains."""
    from .models import PolicyRule

    overrides = []
    for row in PolicyRule.objects.all():
        rule = row.to_rule()
        if problem := rule_problem(rule):
            # The admin form refuses these; a row written around it is skipped, loudly.
            log.error("riskrouter: policy rule %r ignored: %s", rule.name, problem)
            continue
        overrides.append(rule)
    return build_policy(overrides=overrides, company_domains=company_domains())


def active_version():
    from .models import RiskModelVersion

    return RiskModelVersion.objects.filter(state=RiskModelVersion.State.ACTIVE).first()


def load_model(version: str) -> RiskModel:
    from .models import RiskModelVersion

    artifact = RiskModelVersion.objects.filter(version=version).values_list("artifact", flat=True).get()
    return RiskModel.from_bytes(artifact)


def register_candidate(
    *,
    model: RiskModel,
    metrics: Mapping,
    gate_failures: Sequence[str],
    note: str = "",
):
    """Store a trained model as a candidate (or refresh the figures of the same version)."""
    from .models import RiskModelVersion

    row, created = RiskModelVersion.objects.get_or_create(
        version=model.version,
        defaults={
            "artifact": model.to_bytes(),
            "metrics": dict(metrics),
            "gate_passed": not gate_failures,
            "gate_failures": list(gate_failures),
            "training": dict(model.training),
            "note": note,
        },
    )
    if not created:
        RiskModelVersion.objects.filter(pk=row.pk).update(
            metrics=dict(metrics),
            gate_passed=not gate_failures,
            gate_failures=list(gate_failures),
        )
        row.refresh_from_db()
    return row


def promote(*, version: str, force: bool = False):
    """Make `version` the one active model, retiring the previous one.

    Refuses a version whose gate failed unless `force` (a human's rollback).
    """
    from .models import RiskModelVersion

    now = timezone.now()
    with transaction.atomic():
        # Lock both rows: two promotions at once serialize here, and the
        # partial unique index catches anything that slips past.
        target = RiskModelVersion.objects.select_for_update().get(version=version)
        if not target.gate_passed and not force:
            raise ValueError(f"{version} did not pass the gate: {'; '.join(target.gate_failures)}")
        if target.state == RiskModelVersion.State.ACTIVE:
            return target
        RiskModelVersion.objects.select_for_update().filter(state=RiskModelVersion.State.ACTIVE).update(
            state=RiskModelVersion.State.RETIRED,
            retired_at=now,
        )
        RiskModelVersion.objects.filter(pk=target.pk).update(state=RiskModelVersion.State.ACTIVE, promoted_at=now)
    target.refresh_from_db()
    transaction.on_commit(invalidate)  # the outermost commit, not ours, makes it visible
    return target


# -- the per-process router --------------------------------------------------


@dataclass
class _Cache:
    router: Router | None = None
    checked_at: float = float("-inf")
    model_version: str | None = None


_cache = _Cache()
_lock = threading.Lock()


def invalidate() -> None:
    """Look again on the next route (after a promotion or a policy edit here)."""
    _cache.checked_at = float("-inf")


def reset() -> None:
    """Forget the loaded router entirely (tests)."""
    global _cache
    _cache = _Cache()


def _refresh_seconds() -> float:
    return float(getattr(settings, "RISKROUTER_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS))


def _read_state() -> tuple[str | None, Policy]:
    from .models import RiskModelVersion

    version = (
        RiskModelVersion.objects.filter(state=RiskModelVersion.State.ACTIVE).values_list("version", flat=True).first()
    )
    return version, current_policy()


def _refresh(cache: _Cache) -> Router:
    if connection.in_atomic_block:
        # A savepoint keeps a failed lookup (tables not migrated yet) from
        # breaking the caller's transaction on PostgreSQL. Outside one, plain
        # autocommit reads: an atomic block would BEGIN IMMEDIATE on SQLite
        # and take the write lock just to read.
        with transaction.atomic():
            version, policy = _read_state()
    else:
        version, policy = _read_state()
    router = cache.router
    model = router.model if router is not None else None
    if version != cache.model_version:
        model = load_model(version) if version else None
        log.info("riskrouter: routing with model %s", version or "none (policy only)")
        cache.model_version = version
    if router is None or router.model is not model or router.policy.version != policy.version:
        router = Router(policy=policy, model=model)
    return router


def current_router() -> Router:
    """The router this process uses now; never raises for a database problem."""
    cache = _cache
    now = time.monotonic()
    router = cache.router
    if router is not None and now - cache.checked_at < _refresh_seconds():
        return router
    # Only one thread looks; the others keep routing with what they have.
    if router is None:
        _lock.acquire()
    elif not _lock.acquire(blocking=False):
        return router
    try:
        if cache.router is not None and time.monotonic() - cache.checked_at < _refresh_seconds():
            return cache.router
        try:
            cache.router = _refresh(cache)
        except Exception as exc:  # routing must go on: a broken artifact or database is logged, not raised
            expected = isinstance(exc, (DatabaseError, SynchronousOnlyOperation))
            report = log.warning if expected else log.exception
            if cache.router is None:
                report("riskrouter: no model or policy rules from the database (%s); routing by default policy", exc)
                cache.router = Router(policy=build_policy(company_domains=company_domains()))
            else:
                report("riskrouter: could not check for a new model (%s); keeping %s", exc, cache.router.model_version)
        cache.checked_at = time.monotonic()
        return cache.router
    finally:
        _lock.release()
