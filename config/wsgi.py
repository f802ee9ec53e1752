"""The WSGI application gunicorn serves (config/gunicorn.conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

from reviewqueue.core import admission

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Gated: see reviewqueue/core/admission.py (gunicorn's post_worker_init sets the limit).
application = admission.gated(get_wsgi_application())
