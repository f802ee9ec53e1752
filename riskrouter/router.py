"""Policy and model together: the tier an action gets, and why.

The final tier is the highest of the policy's and the model's (an unsure model
already went one up), then one more for each first sighting. Nothing here
lowers a tier. Without a model the first, word-based rules stand in for it,
so a fresh install routes conservatively rather than not at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import rules
from .features import analyze, featurize
from .model import RiskModel
from .policy import DEFAULT_POLICY, Policy, evaluate
from .types import TIER_FLOOR, ActionInput, Route, Tier

NO_MODEL = "none (policy only)"


@dataclass(frozen=True, slots=True)
class Router:
    """An explicit policy and model; replays build one to compare with the live one."""

    policy: Policy = DEFAULT_POLICY
    model: RiskModel | None = None

    @property
    def model_version(self) -> str:
        return self.model.version if self.model is not None else NO_MODEL

    def route(self, action: ActionInput) -> Route:
        started = time.perf_counter()
        analysis = analyze(action, company_domains=self.policy.company_domains)
        decision = evaluate(self.policy, action=action, analysis=analysis)
        reasons = list(decision.reasons)
        probabilities: dict[str, float] = {}
        if self.model is not None:
            features = featurize(
                analysis,
                agent_is_new=action.agent_is_new,
                action_type_is_new=action.action_type_is_new,
            )
            opinion = self.model.opinion(self.model.predict_one(features))
            probabilities = dict(opinion.probabilities)
            tier = Tier.highest(decision.tier, opinion.tier)
            reasons.extend(opinion.reasons)
            risk = opinion.risk
        else:
            fallback = rules.route(action)
            tier = Tier.highest(decision.tier, fallback.tier)
            reasons.append("no trained risk model yet: policy and action-type words only")
            reasons.extend(fallback.reasons)
            risk = fallback.score
        if decision.bumps:  # a new agent and a new type together still go up one tier, not two
            tier = tier.up()
            reasons.extend(f"{bump}: one tier up" for bump in decision.bumps)
        return Route(
            tier=tier,
            score=round(max(risk, TIER_FLOOR[tier]), 4),
            reasons=tuple(dict.fromkeys(reasons)),
            model_version=self.model_version,
            policy_version=self.policy.version,
            probabilities={k: round(v, 4) for k, v in probabilities.items()},
            routing_ms=(time.perf_counter() - started) * 1000,
            four_eyes=decision.four_eyes,
        )
