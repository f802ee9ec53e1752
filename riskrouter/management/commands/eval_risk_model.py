"""Evaluate the active risk model (training one first if none); --gate for CI."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand

from riskrouter import services


class Command(BaseCommand):
    help = (
        "Cross-validate the active model's recipe on the golden set through the whole router (policy + model): "
        "per-tier precision/recall, confusion matrix, high-risk miss rate, automation rate, Brier, ECE and "
        "leave-one-domain-out. With --gate, exit 1 when a floor is broken or a figure regresses against the "
        "active model beyond its tolerance."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--gate", action="store_true", help="Exit 1 when the gate fails.")
        parser.add_argument("--json", dest="json_path", metavar="PATH", help="Also write the figures as JSON to PATH.")

    def handle(self, *args, gate: bool, json_path: str | None, **options) -> None:
        evaluation, failures, version, notes = services.risk_model_evaluate()
        self.stdout.write(services.report(evaluation, failures, version=version, baseline_version=version, notes=notes))
        if json_path:
            with open(json_path, "w", encoding="utf-8") as fh:
                json.dump(
                    {"version": version, "metrics": evaluation.metrics(), "gate_failures": failures},
                    fh,
                    indent=2,
                    sort_keys=True,
                )
        if gate and failures:
            self.stdout.flush()
            sys.exit(1)
