"""Domain errors the services raise; the API turns each into its JSON envelope."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details=None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


class InvalidInput(ServiceError):
    status, code = 422, "validation_error"


class MalformedJson(ServiceError):
    status, code = 400, "invalid_json"


class DuplicateKey(MalformedJson):
    """One object names a key twice: refused, not "the last one wins"."""

    code = "duplicate_key"


class BodyTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class Unauthenticated(ServiceError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str = "Missing or invalid credentials: send 'Authorization: Bearer <key>'."):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFound(ServiceError):
    status, code = 404, "not_found"


class Forbidden(ServiceError):
    status, code = 403, "forbidden"


class ScopeDenied(ServiceError):
    status, code = 403, "scope_denied"


class IllegalTransition(ServiceError):
    status, code = 409, "illegal_transition"


class IdempotencyConflict(ServiceError):
    status, code = 409, "idempotency_key_reused"


class RateLimited(ServiceError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: int, details=None):
        super().__init__(message, details=details, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class TooManyWaits(RateLimited):
    code = "too_many_waits"


class KillSwitchEngaged(ServiceError):
    status, code = 423, "kill_switch_engaged"


class ServiceUnavailable(ServiceError):
    status, code = 503, "service_unavailable"
