"""Train a risk model; register it as a candidate; promote it only through the gate."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from riskrouter import services


class Command(BaseCommand):
    help = (
        "Train on the golden set plus feedback labels (settings.RISKROUTER_FEEDBACK_SOURCE), evaluate the "
        "recipe by cross-validation, register the model as a candidate and promote it when the gate passes. "
        "Exits 1 when the gate fails (except with --if-missing, where routing falls back to the policy)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--if-missing", action="store_true", help="Do nothing when a model is already active.")
        parser.add_argument("--no-promote", action="store_true", help="Register the candidate but don't promote it.")
        parser.add_argument("--quiet", action="store_true", help="Print only the outcome, not the evaluation.")
        parser.add_argument(
            "--skip-lodo",
            action="store_true",
            help="Skip the leave-one-domain-out run (about twice as fast; its figures aren't stored).",
        )

    def handle(self, *args, if_missing: bool, no_promote: bool, quiet: bool, skip_lodo: bool, **options) -> None:
        outcome = services.risk_model_train(promote=not no_promote, if_missing=if_missing, lodo=not skip_lodo)
        if outcome.skipped:
            self.stdout.write(f"Nothing to train: {outcome.skipped}.")
            return
        model, evaluation = outcome.trained()
        if not quiet:
            self.stdout.write(
                services.report(
                    evaluation,
                    outcome.failures,
                    version=model.version,
                    baseline_version=outcome.baseline_version,
                )
            )
        for message in outcome.messages:
            self.stdout.write(message)
        if outcome.failures:
            if if_missing:
                self.stderr.write("Gate failed: no model is active; routing uses the policy alone.")
                return
            raise CommandError("gate failed: " + "; ".join(outcome.failures))
