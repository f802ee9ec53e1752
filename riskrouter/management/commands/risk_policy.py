"""Show the effective routing policy; optionally copy the code defaults into the admin."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from riskrouter import registry
from riskrouter.indicators import INDICATOR_NAMES
from riskrouter.models import PolicyRule
from riskrouter.policy import DEFAULT_RULES


class Command(BaseCommand):
    help = (
        "Print the effective policy and its version. --seed-defaults copies code defaults into the admin for editing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--seed-defaults", action="store_true", help="Create an admin row for each default rule not yet overridden."
        )

    def handle(self, *args, seed_defaults: bool, **options) -> None:
        if seed_defaults:
            existing = set(PolicyRule.objects.values_list("name", flat=True))
            created = [
                PolicyRule.objects.create(
                    name=r.name,
                    kind=r.kind,
                    match=r.match,
                    tier=r.tier,
                    op=r.op,
                    value=r.value,
                    four_eyes=r.four_eyes,
                    reason=r.reason,
                    unless=r.unless,
                    enabled=r.enabled,
                )
                for r in DEFAULT_RULES
                if r.name not in existing
            ]
            self.stdout.write(f"Copied {len(created)} default rules into the admin.")
        policy = registry.current_policy()
        overridden = set(PolicyRule.objects.values_list("name", flat=True))
        self.stdout.write(f"{policy.version}; company domains: {', '.join(policy.company_domains)}")
        for r in policy.rules:
            origin = "admin" if r.name in overridden else "default"
            what = f"{r.match} {r.op} {r.value:g}" if r.kind == "threshold" else r.match
            extra = (" four-eyes" if r.four_eyes else "") + (f" unless {r.unless}" if r.unless else "")
            self.stdout.write(f"  [{origin:<7}] {r.name:<26} {r.kind:<14} {what:<28} → {r.tier}{extra}  {r.reason}")
        self.stdout.write("Indicators: " + ", ".join(INDICATOR_NAMES))
