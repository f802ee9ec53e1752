"""Risk colours: painted from the tier the router chose, so a blocking action
always looks high and the colours never disagree with the router."""

from django import template

from riskrouter.types import TIER_FLOOR, Tier

register = template.Library()

RISK_CLASS: dict[str, str] = {Tier.AUTO: "risk-low", Tier.ASYNC_REVIEW: "risk-medium", Tier.BLOCKING: "risk-high"}


@register.filter
def risk_class(tier: str) -> str:
    """The CSS class of a tier's colour ("risk-high" for blocking)."""
    return RISK_CLASS.get(tier, "risk-low")


@register.simple_tag
def tier_floor(tier: str) -> float:
    """The lowest score the router gives a tier (the risk meter's bands)."""
    return TIER_FLOOR[Tier(tier)]
