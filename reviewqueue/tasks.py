"""Celery tasks: one service call each."""

from celery import shared_task

from . import housekeeping


@shared_task(name="reviewqueue.housekeeping", time_limit=300, ignore_result=True)
def housekeeping_task(**kwargs) -> None:
    """Drop idempotency keys past their TTL and finished rate-limit windows."""
    housekeeping.purge_expired()
