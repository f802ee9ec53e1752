"""The risk router: decides which tier an agent's action goes to.

Pure code: it never imports reviewqueue and takes and returns plain values.
"""

import time

from . import rules
from .types import ActionInput, Route, Tier

__all__ = ["ActionInput", "Route", "Tier", "route"]


def route(action: ActionInput) -> Route:
    started = time.perf_counter()
    decided = rules.route(action)
    return Route(
        tier=decided.tier, score=decided.score, reasons=decided.reasons,
        model_version=decided.model_version, policy_version=decided.policy_version,
        probabilities=decided.probabilities, four_eyes=decided.four_eyes,
        routing_ms=(time.perf_counter() - started) * 1000,
    )
