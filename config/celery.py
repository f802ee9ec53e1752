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
# a running demo's log. Failures still log (ERROR), and so do the tasks' own messages.
ROUTINE_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


@after_setup_logger.connect
def _quiet_routine_work(**kwargs):
    for name in ROUTINE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _local_run() -> bool:
    from django.conf import settings

    return bool(settings.LOCAL_RUN)


if _local_run():
    # A local demo often runs as root (a container, a VM); in production the
    # worker runs as an unprivileged user (README, "Security") and Celery's
    # warning stands.
    warnings.filterwarnings("ignore", message="You're running the worker with superuser privileges")
