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
def meter_bound(tier: str) -> float:
    """A risk meter's band edge for a tier: just under its floor, since <meter>
    paints a value equal to `high` in the middle band, and a score at a tier's
    floor belongs to that tier."""
    return round(TIER_FLOOR[Tier(tier)] - 0.0001, 4)
