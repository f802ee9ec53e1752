from django.core.management.base import BaseCommand

from reviewqueue.credentials.keys import agent_key_issue
from reviewqueue.management.commands._rotation import agent_and_grace


class Command(BaseCommand):
    help = "Issue a new key for an agent and print it (last word); old keys stop after --grace (default: now)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--grace", help="Keep old keys valid this long, e.g. 15m or 24h.")

    def handle(self, *args, name, grace, **options):
        agent, grace_delta = agent_and_grace(name, grace)
        key = agent_key_issue(agent=agent, actor="cli", grace=grace_delta)
        when = f"in {grace}" if grace else "now"
        self.stdout.write(f"Old keys of {name} stop working {when}.")
        self.stdout.write(f"New API key (shown once): {key}")
