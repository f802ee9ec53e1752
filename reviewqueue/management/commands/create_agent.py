from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from reviewqueue.credentials.keys import agent_create


class Command(BaseCommand):
    help = "Create an agent and print its key (the key is the last word of the last line; it is shown once)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            dest="scopes",
            help="Shell-style pattern of action types it may submit; repeat for more.",
        )
        parser.add_argument("--rate-limit", type=int, help="Submissions a minute (default 120).")
        parser.add_argument("--conversation-rate-limit", type=int, help="Submissions a minute per conversation.")
        parser.add_argument("--description", default="")

    def handle(self, *args, name, scopes, rate_limit, conversation_rate_limit, description, **options):
        if any(not s.strip() for s in scopes):
            raise CommandError("--scope must not be empty")
        try:
            agent, key = agent_create(
                name=name,
                scopes=scopes,
                actor="cli",
                rate_limit_per_minute=rate_limit,
                conversation_rate_limit_per_minute=conversation_rate_limit,
                description=description,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stdout.write(f"Created agent {agent.name} with scopes {', '.join(agent.scopes)}.")
        self.stdout.write(f"Its webhook secret: {agent.webhook_secret}")
        self.stdout.write(f"Its API key (shown once): {key}")
