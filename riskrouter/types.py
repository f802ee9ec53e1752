"""Plain values the router takes and returns; no Django, no reviewqueue."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Tier(enum.StrEnum):
    AUTO = "auto"
    ASYNC_REVIEW = "async_review"
    BLOCKING = "blocking"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def up(self) -> Tier:
        """One tier stricter, saturating at blocking."""
        return _ORDER[min(self.rank + 1, len(_ORDER) - 1)]

    @staticmethod
    def highest(*tiers: Tier) -> Tier:
        return max(tiers, key=lambda t: t.rank)


_ORDER = (Tier.AUTO, Tier.ASYNC_REVIEW, Tier.BLOCKING)
_RANK = {tier: i for i, tier in enumerate(_ORDER)}
# The score never contradicts the tier: a policy block reads at least 0.67.
# The dashboard paints its risk colours from these floors too.
TIER_FLOOR = {Tier.AUTO: 0.0, Tier.ASYNC_REVIEW: 0.34, Tier.BLOCKING: 0.67}


@dataclass(frozen=True, slots=True)
class ActionInput:
    """What the router may look at: the agent's proposal, never our own state."""

    action_type: str
    payload: Mapping[str, Any]
    summary: str
    tool: str = ""
    rationale: str = ""
    agent: str = ""
    context: Mapping[str, Any] | None = None
    # Set by the caller from its history: first sightings go up a tier.
    agent_is_new: bool = False
    action_type_is_new: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    tier: Tier
    score: float
    reasons: tuple[str, ...]
    model_version: str
    policy_version: str = ""
    probabilities: Mapping[str, float] = field(default_factory=dict)
    routing_ms: float = 0.0
    # The policy may ask for two distinct approvers (four eyes).
    four_eyes: bool = False


@dataclass(frozen=True, slots=True)
class LabeledAction:
    """One training example: the golden set's rows and reviewers' decisions alike.

    `label` is the risk a person assigned (low, medium, high); `weight` lets a
    weak signal (an unchanged approval of a blocked action) count for less.
    """

    action: ActionInput
    label: str
    weight: float = 1.0
    source: str = ""
