"""Django glue: model versions and the admin-editable policy rules."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .policy import OPS, UP, Rule, rule_problem
from .types import Tier


class RiskModelVersion(models.Model):
    """One trained model, named by its content hash, with the figures that let it in (or not)."""

    class State(models.TextChoices):
        CANDIDATE = "candidate"
        ACTIVE = "active"
        RETIRED = "retired"

    version = models.CharField(max_length=40, unique=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.CANDIDATE)
    # A joblib pickle of riskrouter.model.RiskModel; only train_risk_model writes it.
    artifact = models.BinaryField()
    metrics = models.JSONField(default=dict, blank=True)
    gate_passed = models.BooleanField(default=False)
    gate_failures = models.JSONField(default=list, blank=True)
    training = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    promoted_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Two concurrent promotions can't both leave a model active.
            models.UniqueConstraint(fields=["state"], condition=Q(state="active"), name="riskrouter_one_active_model"),
        ]

    def __str__(self) -> str:
        return f"{self.version} ({self.state})"


class PolicyRule(models.Model):
    """An admin's rule; a row named like a default replaces that default (or, disabled, removes it)."""

    class Kind(models.TextChoices):
        PATTERN = "pattern", "action type/tool pattern"
        THRESHOLD = "threshold", "payload threshold"
        INDICATOR = "indicator", "indicator"
        FIRST_SIGHTING = "first_sighting", "first sighting"

    TIER_CHOICES = [(t.value, t.value) for t in Tier] + [(UP, "one tier up")]

    # Static help texts: a migration shouldn't change whenever a default does.
    name = models.SlugField(
        max_length=64,
        unique=True,
        help_text=("A default rule's name overrides that default (`manage.py risk_policy` lists them)."),
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    match = models.CharField(
        max_length=200,
        help_text=(
            "pattern: glob over the action type or tool (e.g. *delete*backup*); threshold: amount, recipients, rows "
            "or a payload key glob; indicator: an indicator name (`manage.py risk_policy` lists them); "
            "first sighting: agent or action_type"
        ),
    )
    tier = models.CharField(max_length=16, choices=TIER_CHOICES, default=Tier.BLOCKING.value)
    op = models.CharField(max_length=2, choices=[(k, k) for k in OPS], default=">=", blank=True)
    value = models.FloatField(null=True, blank=True)
    four_eyes = models.BooleanField(default=False, help_text="Ask for two distinct approvers.")
    reason = models.CharField(max_length=200, blank=True, help_text="Shown to reviewers.")
    unless = models.CharField(max_length=40, blank=True, help_text="An indicator that disarms the rule, e.g. dry_run.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if problem := rule_problem(self.to_rule()):
            raise ValidationError(problem)

    def to_rule(self) -> Rule:
        return Rule(
            name=self.name,
            kind=self.kind,
            match=self.match,
            tier=self.tier,
            op=self.op or ">=",
            value=self.value,
            four_eyes=self.four_eyes,
            reason=self.reason,
            unless=self.unless,
            enabled=self.enabled,
        )
