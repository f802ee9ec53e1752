"""The first, conservative rule policy: it decides on the action type alone.

Today it stands in for the model while none is trained (router.Router without
a model); its word families (vocabulary.BLOCKING_FAMILIES and READ_FAMILY) are
also the model's coarse verb families (features).

A word that means money, deletion, an external send, a permission grant or a
shell/infra change blocks, whatever else the name says; only names made of
read-like verbs go through untouched; everything else waits for a review.
"""

from .tokens import split_identifier
from .types import ActionInput, Route, Tier
from .vocabulary import BLOCKING_FAMILIES, READ_FAMILY

POLICY_VERSION = "rules-v1"


def route(action: ActionInput) -> Route:
    words = split_identifier(action.action_type) + split_identifier(action.tool)
    reasons = [
        f"action type '{action.action_type}' {what} ('{word}')"
        for what, vocabulary in BLOCKING_FAMILIES.items()
        for word in words
        if word in vocabulary
    ]
    if reasons:
        return Route(Tier.BLOCKING, 0.9, tuple(dict.fromkeys(reasons)), POLICY_VERSION, POLICY_VERSION)
    verbs = [w for w in words if w in READ_FAMILY]
    if verbs:
        return Route(
            Tier.AUTO,
            0.1,
            (f"action type '{action.action_type}' only reads ('{verbs[0]}')",),
            POLICY_VERSION,
            POLICY_VERSION,
        )
    return Route(
        Tier.ASYNC_REVIEW,
        0.5,
        (f"action type '{action.action_type}' is not a known read; reviewed after the fact",),
        POLICY_VERSION,
        POLICY_VERSION,
    )
