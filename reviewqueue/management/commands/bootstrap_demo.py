import secrets

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError

from config.env import write_private_file
from reviewqueue.core.roles import ROLES, Role
from reviewqueue.credentials.keys import agent_create, agent_key_issue, authenticate_key
from reviewqueue.models import Agent

DEMO_USERS = {
    "admin": [Role.ADMIN],
    "reviewer": [Role.REVIEWER],
    "senior": [Role.REVIEWER, Role.SENIOR_REVIEWER],
    "ops": [Role.OPS],
}


class Command(BaseCommand):
    help = "Create the role groups, one demo user per role and a demo agent; print their logins (local runs only)."

    def handle(self, *args, **options):
        if not settings.LOCAL_RUN:
            raise CommandError("Demo users with printed passwords are for local runs only.")
        for role in ROLES:
            Group.objects.get_or_create(name=role)
        logins_file = settings.VAR_DIR / LOGINS_FILE
        kept = _kept_passwords(logins_file)
        lines = []
        for username, groups in DEMO_USERS.items():
            user, _ = User.objects.get_or_create(username=username)
            password = kept.get(username) or secrets.token_urlsafe(9)
            user.set_password(password)
            user.is_staff = user.is_superuser = username == "admin"
            user.save()
            user.groups.set(Group.objects.filter(name__in=groups))
            lines.append(f"  {username:<9} {password}   ({', '.join(groups)})")
        lines.append(f"Demo agent key: {_demo_agent_key()}")
        write_private_file(logins_file, "\n".join(lines) + "\n")  # credentials: mode 0600
        self.stdout.write(f"Demo logins (the same on every start while {logins_file} lasts):")
        self.stdout.write("\n".join(lines))


LOGINS_FILE = "demo-logins.txt"


def _kept_passwords(path) -> dict[str, str]:
    """The demo users' passwords from an earlier start, so a restart doesn't change them."""
    if not path.exists():
        return {}
    kept = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] in DEMO_USERS:
            kept[fields[0]] = fields[1]
    return kept


def _demo_agent_key() -> str:
    """The demo agent's key, the same on every start while its file lasts:
    keys are stored hashed, so the file is the only copy (the demo agent
    process reads it too)."""
    key_file = settings.VAR_DIR / "demo-agent.key"
    agent = Agent.objects.filter(name="demo-agent").first()
    if agent is None:
        _, key = agent_create(name="demo-agent", scopes=["*"], actor="bootstrap_demo")
    else:
        key = key_file.read_text().strip() if key_file.exists() else ""
        principal = authenticate_key(key) if key else None
        if principal and principal.agent == agent:
            return key
        key = agent_key_issue(agent=agent, actor="bootstrap_demo")
    write_private_file(key_file, key)  # mode 0600 from the start: the key is a credential
    return key
