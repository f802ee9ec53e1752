"""Celery tasks: one service call each."""

from celery import shared_task

from reviewqueue.controls import housekeeping
from reviewqueue.notify.outbox import deliver_task  # noqa: F401  (registered here with the others)


@shared_task(name="reviewqueue.housekeeping", time_limit=300, ignore_result=True)
def housekeeping_task(**kwargs) -> None:
    """Drop idempotency keys past their TTL and finished rate-limit windows."""
    housekeeping.purge_expired()


@shared_task(name="reviewqueue.refusals_fold", time_limit=120, ignore_result=True)
def refusals_fold_task(**kwargs) -> None:
    """Write one audit event per closed window of counted refusals (idempotent)."""
    from reviewqueue.controls.refusals import refusals_fold

    refusals_fold()


@shared_task(name="reviewqueue.sla_sweep", time_limit=60, ignore_result=True)
def sla_sweep_task(**kwargs) -> None:
    """Escalate, expire and alert whatever is due (idempotent; beat runs it every second)."""
    from reviewqueue.actions.clock import sla_sweep

    sla_sweep()


@shared_task(name="reviewqueue.outbox_sweep", time_limit=120, ignore_result=True)
def outbox_sweep_task(**kwargs) -> None:
    """Deliver due notifications and webhooks, retries included."""
    from reviewqueue.notify.outbox import outbox_sweep

    outbox_sweep()


@shared_task(name="reviewqueue.audit_checkpoint", time_limit=300, ignore_result=True)
def audit_checkpoint_task(**kwargs) -> None:
    """Sign the audit chain's head into the checkpoint file outside the database."""
    from reviewqueue.audit.trail import audit_checkpoint

    audit_checkpoint()
