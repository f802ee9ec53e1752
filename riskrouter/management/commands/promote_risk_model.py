"""Promote a registered model version by hand (a rollback), through the gate's verdict."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from riskrouter import registry
from riskrouter.models import RiskModelVersion


class Command(BaseCommand):
    help = "Make a registered model version active. Refuses one whose gate failed unless --force."

    def add_arguments(self, parser) -> None:
        parser.add_argument("version", nargs="?", help="e.g. rm-3f2a9c1b7d4e; omit to list versions.")
        parser.add_argument("--force", action="store_true", help="Promote even though its gate failed.")

    def handle(self, *args, version: str | None, force: bool, **options) -> None:
        if not version:
            for row in RiskModelVersion.objects.defer("artifact"):
                cv = row.metrics.get("cv", {})
                self.stdout.write(
                    f"{row.version}  {row.state:<9}  gate {'pass' if row.gate_passed else 'FAIL'}  "
                    f"rows {row.training.get('rows')}  high→auto {cv.get('high_to_auto')}  "
                    f"high recall {cv.get('high_recall_blocking')}  automation {cv.get('automation_rate')}  "
                    f"created {row.created_at:%Y-%m-%d %H:%M}"
                )
            return
        try:
            row = registry.promote(version=version, force=force)
        except RiskModelVersion.DoesNotExist as exc:
            raise CommandError(f"no model version {version!r}") from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{row.version} is active.")
