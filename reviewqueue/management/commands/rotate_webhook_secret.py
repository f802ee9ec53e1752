from django.core.management.base import BaseCommand, CommandError

from config.env import parse_duration
from reviewqueue.credentials import agent_webhook_secret_rotate
from reviewqueue.models import Agent


class Command(BaseCommand):
    help = ("Give an agent a new webhook secret and print it (last word); the old one keeps signing "
            "deliveries, beside the new one, for --grace (default: it stops now).")

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--grace", help="Keep signing with the old secret this long too, e.g. 1h.")

    def handle(self, *args, name, grace, **options):
        agent = Agent.objects.filter(name=name).first()
        if agent is None:
            raise CommandError(f"No agent named {name!r}")
        try:
            grace_delta = parse_duration(grace) if grace else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        secret = agent_webhook_secret_rotate(agent=agent, actor="cli", grace=grace_delta)
        when = f"in {grace}" if grace else "now"
        self.stdout.write(f"Webhooks of {name} stop carrying a signature under the old secret {when}.")
        self.stdout.write(f"New webhook secret (shown once): {secret}")
