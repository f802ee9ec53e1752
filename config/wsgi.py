"""
WSGI config for config project.

It exposes the WSGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

import os

from django.core.wsgi import get_wsgi_application

from reviewqueue.core import admission

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')

# Gated: see reviewqueue/admission.py (gunicorn's post_worker_init sets the limit).
application = admission.gated(get_wsgi_application())
