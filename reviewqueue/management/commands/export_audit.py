import sys
from datetime import UTC

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from config.env import parse_duration
from reviewqueue.audit.trail import ChainWalk, audit_export, checkpoints_read
from reviewqueue.core.canonical import canonical_json
from reviewqueue.management.commands.verify_audit import chain_problems


def parse_since(text: str):
    """An ISO-8601 time (UTC if no offset) or an age such as 7d or 12h."""
    try:
        return timezone.now() - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"--since {text!r}: use an ISO time (2026-11-01T00:00:00Z) or an age (7d, 12h)")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


class Command(BaseCommand):
    help = (
        "Write the audit trail as JSON Lines (to stdout, or --output FILE), checking it against its signed "
        "checkpoints on the way; exit 1 naming what differs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="Only events at or after this time (ISO-8601) or age (7d).")
        parser.add_argument("--output", help="File to write instead of stdout.")

    def handle(self, *args, since, output, **options):
        since_at = parse_since(since) if since else None
        checkpoints = checkpoints_read()
        walk = ChainWalk(checkpoints)
        stream = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115 (closed below, unless stdout)
        count = 0
        try:
            for event in audit_export(since=since_at, walk=walk):
                stream.write(canonical_json(event) + "\n")
                count += 1
        finally:
            if output:
                stream.close()
        walk.finish()
        self.stderr.write(f"exported {count} events")
        if problems := chain_problems(walk, checkpoints):
            raise CommandError("the exported trail does not match its checkpoints: " + "; ".join(problems))
