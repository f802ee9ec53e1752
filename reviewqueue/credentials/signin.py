"""Sign-in throttling (django-axes) and the audit of failed sign-ins.

Axes counts failures per username and client address in the shared store
(Redis through Django's cache when REDIS_URL is set, the database otherwise,
so every web process sees the same count) and refuses further sign-ins, the
right password included, until the cool-off ends. Both the dashboard's and
the admin's login go through `authenticate()`, so both are covered.
"""

from __future__ import annotations

from axes.handlers.cache import AxesCacheHandler
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import render
from django.template.response import TemplateResponse

from reviewqueue.audit.trail import audit_append
from reviewqueue.core.jsonbody import printable


class _AuditsFailures:
    """Each failure axes counts is an audit event (never the password). Tries
    refused during a lockout are not: the lockout itself was audited, and a
    flood of refusals must not grow the trail."""

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        super().user_login_failed(sender, credentials, request, **kwargs)  # type: ignore[misc]  # axes has no stubs
        if request is None:
            return
        failures = getattr(request, "axes_failures_since_start", None)
        limit = get_failure_limit(request, credentials)
        if failures is None or failures > limit:
            return  # refused by a lockout already in force
        ip = getattr(request, "axes_ip_address", None) or ""
        with transaction.atomic():
            audit_append(
                kind="user.login_failed",
                actor=f"ip:{ip}",
                data={
                    "username": printable((get_client_username(request, credentials) or "")[:150]),
                    "ip": ip,
                    "path": printable(request.path[:200]),
                    "failures": failures,
                    "locked_out": failures >= limit,
                },
            )


class AuditedCacheHandler(_AuditsFailures, AxesCacheHandler):
    pass


class AuditedDatabaseHandler(_AuditsFailures, AxesDatabaseHandler):
    pass


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """The sign-in page again (the admin's or the dashboard's, whichever was
    used) saying why and for how long: 429 with Retry-After."""
    cool_off = get_cool_off(request)
    minutes = max(1, round(cool_off.total_seconds() / 60)) if cool_off else None
    message = "Too many failed sign-ins for this account from your address. " + (
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}." if minutes else "Ask an admin to unlock it."
    )
    context = getattr(original_response, "context_data", None) or {}
    if isinstance(original_response, TemplateResponse) and "form" in context:
        # A fresh, unbound form carrying only the lockout: validating one would authenticate again.
        form = type(context["form"])(request, initial={"username": get_client_username(request, credentials)})
        form.cleaned_data = {}
        form.add_error(None, message)
        template = original_response.template_name
        response = render(
            request,
            template if isinstance(template, str | list | tuple) else "registration/login.html",
            {**context, "form": form, "locked_out": message},
            status=429,
        )
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    if cool_off:
        response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
