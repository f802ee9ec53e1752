from django.core.management.base import BaseCommand, CommandError

from reviewqueue.credentials.keys import agent_keys_revoke
from reviewqueue.models import Agent


class Command(BaseCommand):
    help = "Revoke every key of an agent at once."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        agent = Agent.objects.filter(name=name).first()
        if agent is None:
            raise CommandError(f"No agent named {name!r}")
        count = agent_keys_revoke(agent=agent, actor="cli")
        self.stdout.write(f"Revoked {count} key(s) of {name}.")
