"""The service's own settings, plus the floor view."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floor"
