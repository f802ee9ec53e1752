"""The risk router: decides which tier an agent's action goes to.

Pure code: it never imports reviewqueue and takes and returns plain values.
The Django glue (model versions, admin-editable rules, commands) lives in
models.py, registry.py and management/, and is imported only when needed so
that this package imports before Django's app registry is ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .types import ActionInput, LabeledAction, Route, Tier

if TYPE_CHECKING:
    from .model import RiskModel
    from .policy import Policy
    from .router import Router

__all__ = ["ActionInput", "LabeledAction", "Route", "Tier", "current_router", "route"]

_CURRENT: Any = object()


def current_router() -> Router:
    """This process's router: the active model and policy, refreshed every few seconds."""
    from django.conf import settings

    if not settings.configured:
        from .router import Router

        return Router()
    from .registry import current_router as _current

    return _current()


def route(
    action: ActionInput,
    *,
    router: Router | None = None,
    model: RiskModel | None = _CURRENT,
    policy: Policy | None = None,
) -> Route:
    """Route one action with the live router, or with an explicit one (replays, what-ifs).

    `model=None` means "no model" (policy only); leave it out for the active model.
    """
    if router is None:
        router = current_router()
        if model is not _CURRENT or policy is not None:
            from .router import Router

            router = Router(
                policy=policy if policy is not None else router.policy,
                model=router.model if model is _CURRENT else model,
            )
    return router.route(action)
