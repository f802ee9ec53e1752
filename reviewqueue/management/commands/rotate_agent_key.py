from django.core.management.base import BaseCommand, CommandError

from config.env import parse_duration
from reviewqueue.credentials import agent_key_issue
from reviewqueue.models import Agent


class Command(BaseCommand):
    help = "Issue a new key for an agent and print it (last word); old keys stop after --grace (default: now)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--grace", help="Keep old keys valid this long, e.g. 15m or 24h.")

    def handle(self, *args, name, grace, **options):
        agent = Agent.objects.filter(name=name).first()
        if agent is None:
            raise CommandError(f"No agent named {name!r}")
        try:
            grace_delta = parse_duration(grace) if grace else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        key = agent_key_issue(agent=agent, actor="cli", grace=grace_delta)
        when = f"in {grace}" if grace else "now"
        self.stdout.write(f"Old keys of {name} stop working {when}.")
        self.stdout.write(f"New API key (shown once): {key}")
