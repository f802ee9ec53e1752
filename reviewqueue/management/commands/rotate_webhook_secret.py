from django.core.management.base import BaseCommand

from reviewqueue.credentials.keys import agent_webhook_secret_rotate
from reviewqueue.management.commands._rotation import agent_and_grace


class Command(BaseCommand):
    help = (
        "Give an agent a new webhook secret and print it (last word); the old one keeps signing "
        "deliveries, beside the new one, for --grace (default: it stops now)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--grace", help="Keep signing with the old secret this long too, e.g. 1h.")

    def handle(self, *args, name, grace, **options):
        agent, grace_delta = agent_and_grace(name, grace)
        secret = agent_webhook_secret_rotate(agent=agent, actor="cli", grace=grace_delta)
        when = f"in {grace}" if grace else "now"
        self.stdout.write(f"Webhooks of {name} stop carrying a signature under the old secret {when}.")
        self.stdout.write(f"New webhook secret (shown once): {secret}")
