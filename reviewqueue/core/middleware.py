"""Every answer under /api/ is JSON, errors included (API.md, "Errors"); text
no database can store is refused at the door; and the Content-Security-Policy
header, built only where it is sent."""

import json
import logging

import redis
from csp.middleware import CSPMiddleware as _CSPMiddleware
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpResponseBadRequest, JsonResponse

from reviewqueue.core.jsonbody import body_too_large

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    423: "locked",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def error_response(status: int, code: str, message: str, details=None, headers=None) -> JsonResponse:
    body = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    response = JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})
    for name, value in (headers or {}).items():
        response[name] = value
    return response


class ApiErrorEnvelopeMiddleware:
    """Turns Django's own HTML errors (unknown URL, wrong method, CSRF, a crash)
    into the JSON envelope for API paths, so clients never parse HTML."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json") and _is_envelope(response):
            return response
        status = response.status_code
        wrapped = error_response(status, _CODES.get(status, "error"), _message(status, response))
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                wrapped[header] = response[header]
        return wrapped

    def process_exception(self, request, exception):
        if not request.path.startswith(API_PREFIX):
            return None
        # Fail closed: without the state (the kill switch included) or the rate-limit
        # counts, nothing is approved and nothing was written.
        if unreachable := _unreachable(exception):
            logger.exception("%s unavailable", unreachable)
            return error_response(
                503,
                "service_unavailable",
                f"The service can't reach {unreachable}; retry later.",
                headers={"Retry-After": "5"},
            )
        if isinstance(exception, RequestDataTooBig):  # Django's own cap, met before our parser's
            error = body_too_large()
            return error_response(error.status, error.code, error.message, error.details)
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")


def _unreachable(exception: Exception) -> str | None:
    if isinstance(exception, DatabaseError):
        return "its database"
    if isinstance(exception, redis.ConnectionError | redis.TimeoutError):
        return "Redis"
    return None


def _is_envelope(response) -> bool:
    try:
        return "error" in json.loads(response.content)
    except (ValueError, TypeError):
        return False


def _message(status: int, response) -> str:
    if status == 405:
        return f"Method not allowed; use {response.get('Allow', 'another method')}."
    return {404: "No such resource.", 403: "Not allowed.", 400: "Bad request."}.get(status, "Request failed.")


class CSPMiddleware(_CSPMiddleware):
    """django-csp builds the policy for every response and only then leaves
    it off the excluded prefixes (the API's JSON, the admin): on a submission
    that build was some 8% of the request. Skip it where it would be dropped."""

    def __init__(self, get_response):
        super().__init__(get_response)
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}
        report_only = getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
        self.excluded = () if report_only else tuple(policy.get("EXCLUDE_URL_PREFIXES") or ())

    def process_response(self, request, response):
        if self.excluded and request.path_info.startswith(self.excluded):
            return response
        return super().process_response(request, response)


class RefuseNulMiddleware:
    """A NUL character in a query parameter or a submitted form field is a 400
    before any view runs. PostgreSQL can't store or even compare text holding
    one, so a filter, a search box or a login form would otherwise fail with a
    500 (JSON bodies are checked by reviewqueue/jsonbody.py)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _holds_nul(request):
            message = "The request holds a NUL character (%00), which no field accepts."
            if request.path.startswith(API_PREFIX):
                return error_response(400, "bad_request", message)
            return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


def _holds_nul(request) -> bool:
    """Query string and path as sent (percent-encoded or raw), then the fields
    of a form post; an API's JSON body is left to its parser."""
    query = request.META.get("QUERY_STRING", "")
    if "%00" in query or "\x00" in query or "\x00" in request.path:
        return True
    if request.method != "POST" or request.path.startswith(API_PREFIX):
        return False
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return False
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in request.POST.lists())
