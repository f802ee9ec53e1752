from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from reviewqueue.credentials.keys import user_token_issue


class Command(BaseCommand):
    help = "Print a new API token for a user (last word of the last line); earlier tokens are revoked."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}")
        token = user_token_issue(user=user, actor="cli")
        self.stdout.write(f"API token for {username} (shown once): {token}")
