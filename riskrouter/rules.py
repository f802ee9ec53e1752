"""The first, conservative rule policy: it decides on the action type alone.

Today it stands in for the model while none is trained (router.Router without
a model), and its word lists give the model coarse verb families (features).

A word that means money, deletion, an external send, a permission grant or a
shell/infra change blocks, whatever else the name says; only names made of
read-like verbs go through untouched; everything else waits for a review.
"""

from .tokens import split_identifier
from .types import ActionInput, Route, Tier

POLICY_VERSION = "rules-v1"

BLOCKING_WORDS: dict[str, frozenset[str]] = {
    "moves money": frozenset(
        "refund refunds transfer transfers pay payment payout payouts charge charges "
        "withdraw wire invoice purchase buy sell trade order checkout".split()
    ),
    "deletes data": frozenset(
        "delete deletes remove destroy drop purge truncate wipe erase unlink rm rmdir "
        "terminate revoke cancel archive overwrite".split()
    ),
    "sends outside": frozenset(
        "send email mail message post publish tweet reply forward share sms notify "
        "invite upload".split()
    ),
    "changes permissions": frozenset(
        "grant permission permissions role roles admin sudo privilege acl iam "
        "policy chmod chown".split()
    ),
    "runs shell or infrastructure": frozenset(
        "shell exec execute bash sh cmd command terminal run script ssh terraform "
        "kubectl deploy scale reboot restart shutdown migrate".split()
    ),
}

READ_WORDS = frozenset(
    "get list read search lookup look up find fetch query view describe show "
    "retrieve count check status preview draft inspect browse".split()
)


def route(action: ActionInput) -> Route:
    words = split_identifier(action.action_type) + split_identifier(action.tool)
    reasons = [
        f"action type '{action.action_type}' {what} ('{word}')"
        for what, vocabulary in BLOCKING_WORDS.items()
        for word in words
        if word in vocabulary
    ]
    if reasons:
        return Route(Tier.BLOCKING, 0.9, tuple(dict.fromkeys(reasons)), POLICY_VERSION, POLICY_VERSION)
    verbs = [w for w in words if w in READ_WORDS]
    if verbs:
        return Route(
            Tier.AUTO, 0.1, (f"action type '{action.action_type}' only reads ('{verbs[0]}')",),
            POLICY_VERSION, POLICY_VERSION,
        )
    return Route(
        Tier.ASYNC_REVIEW, 0.5,
        (f"action type '{action.action_type}' is not a known read; reviewed after the fact",),
        POLICY_VERSION, POLICY_VERSION,
    )
