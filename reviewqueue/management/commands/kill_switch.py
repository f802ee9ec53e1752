from django.core.management.base import BaseCommand, CommandError

from reviewqueue.actions.kill_switches import kill_switch_set
from reviewqueue.core.errors import ServiceError


class Command(BaseCommand):
    help = "Engage or release a kill switch: kill_switch engage|release --scope SCOPE --reason TEXT"

    def add_arguments(self, parser):
        parser.add_argument("verb", choices=["engage", "release"])
        parser.add_argument("--scope", required=True, help="global, agent:<name> or action_type:<pattern>")
        parser.add_argument("--reason", required=True)

    def handle(self, *args, verb, scope, reason, **options):
        try:
            switch, halted = kill_switch_set(scope=scope, engaged=verb == "engage", reason=reason, actor="cli")
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        state = "engaged" if switch.engaged else "released"
        self.stdout.write(f"Kill switch {scope} {state}; {halted} pending action(s) halted.")
