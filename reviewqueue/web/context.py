"""Template context every reviewer and ops page shares: roles, nav counts, kill switches."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from reviewqueue.core import roles
from reviewqueue.queries import selectors


def dashboard(request) -> dict:
    """Lazy: pages that don't show the nav (login, admin) run no query for it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "roles": SimpleLazyObject(lambda: roles.user_roles(user)),
        "nav_counts": SimpleLazyObject(lambda: selectors.queue_counts(user=user)),
        "engaged_switches": SimpleLazyObject(selectors.engaged_switches),
    }
