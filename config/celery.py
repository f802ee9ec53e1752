"""The Celery app: the worker and beat run the clock of the service."""

import logging
import os
import warnings

from celery import Celery
from celery.signals import after_setup_logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("reviewqueue")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Routine work is quiet: beat sends a sweep every second or so, and at INFO each
# one logged three lines ("Sending due task", "received", "succeeded"), most of
# a running demo's log. Only those lines go: start-up, other tasks, failures and
# the tasks' own messages (an audit break is logged as an error) stay.
ROUTINE_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class RoutineWork(logging.Filter):
    """Drops the log lines of beat's scheduled rounds."""

    def __init__(self, tasks: frozenset[str]):
        super().__init__()
        self.tasks = tasks

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Scheduler: Sending due task"):
            return False
        routine = any(f"{task}[" in message for task in self.tasks)
        return not (routine and (message.endswith("] received") or " succeeded in " in message))


@after_setup_logger.connect
def _quiet_routine_work(**kwargs):
    from django.conf import settings

    quiet = RoutineWork(frozenset(entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()))
    for name in ROUTINE_LOGGERS:
        logging.getLogger(name).addFilter(quiet)


def _local_run() -> bool:
    from django.conf import settings

    return bool(settings.LOCAL_RUN)


if _local_run():
    # A local demo often runs as root (a container, a VM); in production the
    # worker runs as an unprivileged user (README, "Security") and Celery's
    # warning stands.
    warnings.filterwarnings("ignore", message="You're running the worker with superuser privileges")
