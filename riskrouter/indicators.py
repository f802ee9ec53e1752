"""Risk indicators found in an action's text: each one a reviewer would point at.

Pure and cheap: regexes with literal prefilters. Personal data and secrets are
found by personal.py (shared with the service's masking), the words of an
action's name are looked up in vocabulary.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .personal import EMAIL, SECRET_KEYS, digit_count, find_cards, find_ibans, find_phones, find_secrets, find_ssns
from .statements import all_read, heads, strip_literals
from .vocabulary import ACCESS_WORDS, DESTRUCTIVE_VERBS, PRIVILEGE_VERBS, PRIVILEGE_WORDS, PRIVILEGE_WRITE_VERBS

_URL_HOST = re.compile(r"\bhttps?://(?:[^/\s@]+@)?([A-Za-z0-9.-]+\.[A-Za-z]{2,24})\b")

# Phrasing that addresses the agent rather than describing the task.
_INJECTION = re.compile(
    r"(?i)\b(?:"
    r"(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+|my\s+|these\s+)*"
    r"(?:previous|prior|above|earlier|preceding|original|system|safety|existing)\s+"
    r"(?:instructions?|prompts?|rules|directions|guidelines|messages?|context|policies|policy)"
    r"|new\s+(?:system\s+)?instructions?\s*:"
    r"|system\s+(?:prompt|override|message)\s*:"
    r"|you\s+are\s+now\s+(?:in\s+)?(?:an?\s+)?(?:admin|developer|unrestricted|dan|god|jailbreak|root)"
    r"|(?:do\s+not|don'?t|never)\s+(?:tell|inform|notify|alert|mention\s+(?:this\s+)?to)\s+(?:the\s+)?"
    r"(?:user|customer|admin|administrator|anyone|security|owner|human|reviewer)s?"
    r"|without\s+(?:telling|notifying|informing|asking)\s+(?:the\s+)?(?:user|customer|admin|anyone|reviewer|human)"
    r"|(?:as|per)\s+(?:an?\s+)?(?:ai|assistant|agent)\s*,?\s+you\s+must"
    r"|<\|?(?:im_start|system)\|?>|\[\[?system\]\]?|\bBEGIN\s+(?:SYSTEM|ADMIN)\b"
    r"|(?:assistant|agent|ai)\s*:\s*(?:ignore|forward|send|transfer|delete)"
    r"|jailbreak"
    r")"
)

# Keyed by a literal that must occur first: one big alternation costs about
# 0.3 ms per action in Python's re, these cost microseconds when absent.
_DESTRUCTIVE_BY_TRIGGER: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (trigger, re.compile(pattern, re.IGNORECASE))
    for trigger, pattern in (
        ("rm", r"\brm\s+(?:-[a-z]*[rf][a-z]*\s+)+|\brmdir\b"),
        ("mkfs", r"\bmkfs(?:\.\w+)?\b"),
        ("dd", r"\bdd\s+if="),
        ("shred", r"\bshred\b"),
        ("wipefs", r"\bwipefs\b"),
        ("/dev/", r">\s*/dev/(?:sd|nvme|hd)"),
        (":()", r":\(\)\s*\{"),
        ("chmod", r"\bchmod\s+(?:-R\s+)?0?777\b"),
        ("chown", r"\bchown\s+-R\b"),
        (
            "git",
            r"\bgit\s+push\s+(?:\S+\s+)*(?:--force\b|-f\b)|\bgit\s+reset\s+--hard\b|\bgit\s+clean\s+-[a-z]*f|\bgit\s+branch\s+-D\b",
        ),
        ("drop", r"\bdrop\s+(?:table|database|schema|index|collection|keyspace)\b|\bdropdatabase\b"),
        ("truncate", r"\btruncate\s+(?:table\s+)?\w"),
        # Literals are blanked before these run: "no WHERE before the end" is reliable.
        ("delete", r"\bdelete\s+from\s+[\w.\"`]+\s*(?:;|$)|\bdeletemany\s*\(\s*\{\s*\}\s*\)"),
        ("update", r"\bupdate\s+[\w.\"`]+\s+set\s+(?:(?!\bwhere\b)[^;])*(?:;|$)"),
        ("flush", r"\bflushall\b|\bflushdb\b"),
        ("kubectl", r"\bkubectl\s+(?:\S+\s+)*?(?:delete|drain|scale\s+\S+\s+--replicas[= ]0)\b"),
        ("helm", r"\bhelm\s+(?:uninstall|delete)\b"),
        ("terraform", r"\bterraform\s+destroy\b|\bterraform\s+apply\s+.*-auto-approve"),
        ("aws", r"\baws\s+s3\s+(?:rm|rb)\b|\baws\s+\w+\s+(?:delete|terminate)-"),
        ("gsutil", r"\bgsutil\s+(?:-m\s+)?rm\b"),
        ("gcloud", r"\bgcloud\s+\S+(?:\s+\S+)?\s+delete\b"),
        ("az ", r"\baz\s+\S+\s+delete\b"),
        ("prune", r"\bdocker\s+(?:system|volume|image)\s+prune\b"),
        ("systemctl", r"\bsystemctl\s+(?:stop|disable|mask)\b"),
        ("shutdown", r"\bshutdown\b"),
        ("reboot", r"\breboot\b"),
        ("kill", r"\bkill\s+-9\b|\bpkill\b|\bkillall\b"),
        ("sh", r"\b(?:curl|wget)\b[^|;\n]*\|\s*(?:sudo\s+)?(?:ba|z)?sh\b"),
        ("iptables", r"\biptables\s+-F\b"),
        ("crontab", r"\bcrontab\s+-r\b"),
        ("history", r"\bhistory\s+-c\b"),
    )
)
_SQL_DESTRUCTIVE = frozenset("delete drop truncate".split())
_PRIVILEGE_TEXT = re.compile(
    r"(?i)\b(?:grant(?:s|ed|ing)?\s+\w+(?:\s+\w+)?\s+(?:admin|owner|role)"
    r"|(?:make|made|promote|add(?:ed)?)\s+\S+\s+(?:an?\s+)?(?:admin|owner|superuser|org\s+owner)"
    r"|add(?:ed)?\s+\S+\s+to\s+(?:the\s+)?(?:admins?|administrators|sudoers|owners|wheel)\b"
    r"|roles?/(?:owner|editor|admin)|AdministratorAccess|\bsudo\s+usermod|\busermod\s+-aG"
    r"|(?:role|permission|access[_ ]level)\W{1,4}(?:admin|owner|superuser|root)\b)"
)
_ELEVATED_ROLES = frozenset("admin administrator owner superuser root".split())
_EDITING_ROLES = frozenset("editor write writer maintainer organizer contributor manager fileorganizer".split())
_EXTERNAL_SHARE = re.compile(
    r"(?i)(?:--public\b|\bpublic\s+(?:gist|repo|repository|bucket|url|page|channel)\b|\bpublic-read\b|\ballUsers\b"
    r"|\ballAuthenticatedUsers\b)|\b(?:anyone\s+with\s+the\s+link|public(?:ly)?\s+(?:link|shared|accessible|visible)"
    r"|make\s+(?:it\s+)?public|visibility\W{1,4}public|share\W{1,4}(?:anyone|public|everyone))\b"
)
_DRY_RUN = re.compile(
    r"(?i)(?:--dry-run|--dryrun|\bgit\s+clean\s+-[a-z]*n|\bmake\s+-n\b|\brsync\s+-[a-z]*n[a-z]*\b|\bdry[ _-]?run\b|--check\b|\bterraform\s+plan\b|--what-if\b|\bexplain\s+(?!analy[sz]e)(?:select|delete|update|insert)\b)"
)
_DRY_RUN_KEYS = frozenset("dry_run dryrun plan_only simulate preview_only check_mode validate_only what_if".split())
_SENSITIVE = re.compile(
    r"(?i)\b(?:ssn|social\s+security|passport|date\s+of\s+birth|dob|diagnos\w*|medical|health\s+record"
    r"|salary|salaries|bank\s+account|routing\s+number|credit\s+card|home\s+address|tax\s+id)\b"
)


# Literal words (lowercase) one of which must occur for the regex to have a
# chance; a substring test is ~100 times cheaper than a failed IGNORECASE scan.
_TRIGGERS: dict[str, tuple[str, ...]] = {
    "injection": (
        "ignore",
        "disregard",
        "forget",
        "override",
        "bypass",
        "instruction",
        "system",
        "you are now",
        "tell",
        "inform",
        "notify",
        "alert",
        "mention",
        "without",
        "you must",
        "<|",
        "[system",
        "begin",
        "jailbreak",
        "assistant",
        "agent",
    ),
    "privilege": (
        "grant",
        "admin",
        "owner",
        "superuser",
        "sudo",
        "usermod",
        "roles/",
        "role",
        "permission",
        "access",
        "wheel",
        "editor",
        "maintainer",
        "root",
        "write",
    ),
    "share": ("public", "anyone", "allusers", "allauthenticatedusers", "share"),
    "dry_run": ("dry", "--check", "plan", "what-if", "explain", "git clean", "make -n", "rsync"),
    "sensitive": (
        "ssn",
        "social security",
        "passport",
        "birth",
        "dob",
        "diagnos",
        "medical",
        "health",
        "salar",
        "bank account",
        "routing number",
        "credit card",
        "home address",
        "tax id",
    ),
}


def _triggered(kind: str, lowered: str) -> bool:
    return any(map(lowered.__contains__, _TRIGGERS[kind]))


@dataclass(frozen=True, slots=True)
class Indicators:
    """What was found; tuples of short evidence strings, empty when absent."""

    emails: tuple[str, ...] = ()
    external_recipients: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    cards: tuple[str, ...] = ()
    ibans: tuple[str, ...] = ()
    ssns: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    injection: tuple[str, ...] = ()
    destructive_commands: tuple[str, ...] = ()
    destructive_verbs: tuple[str, ...] = ()
    privilege: tuple[str, ...] = ()
    access_change: tuple[str, ...] = ()
    public_share: bool = False
    dry_run: bool = False
    read_only_commands: bool = False
    writing_commands: bool = False
    sensitive_terms: tuple[str, ...] = ()

    @property
    def personal_data(self) -> bool:
        return bool(self.phones or self.cards or self.ibans or self.ssns)

    def names(self) -> tuple[str, ...]:
        """The indicator names that fired, as policy rules and features refer to them."""
        fired = {
            "email": self.emails,
            "external_recipient": self.external_recipients,
            "phone": self.phones,
            "card_number": self.cards,
            "iban": self.ibans,
            "ssn": self.ssns,
            "secret": self.secrets,
            "prompt_injection": self.injection,
            "destructive_command": self.destructive_commands,
            "destructive_verb": self.destructive_verbs,
            "privilege_change": self.privilege,
            "access_change": self.access_change,
            "public_share": self.public_share,
            "dry_run": self.dry_run,
            "read_only_commands": self.read_only_commands,
            "writing_commands": self.writing_commands,
            "sensitive_terms": self.sensitive_terms,
            "personal_data": self.personal_data,
            "external_personal_data": (self.external_recipients or self.public_share)
            and (self.personal_data or len(self.emails) > len(self.external_recipients)),
        }
        return tuple(name for name, value in fired.items() if value)


INDICATOR_NAMES = (
    "email",
    "external_recipient",
    "phone",
    "card_number",
    "iban",
    "ssn",
    "secret",
    "prompt_injection",
    "destructive_command",
    "destructive_verb",
    "privilege_change",
    "access_change",
    "public_share",
    "dry_run",
    "read_only_commands",
    "writing_commands",
    "sensitive_terms",
    "personal_data",
    "external_personal_data",
    "read_only",  # the action's name has only read verbs (features.analyze decides)
    "moves_money",
    "amount_unread",  # features.analyze too: a money verb in the name; its amount not readable
)


# "ai" is a trigger only as a word: as a substring it is in "email", "maintain"...
_AI_WORD = re.compile(r"\bai\b")


def find_injection(text: str) -> list[str]:
    lowered = text.lower()
    if not (_triggered("injection", lowered) or ("ai" in lowered and _AI_WORD.search(lowered))):
        return []
    return [m.group().strip()[:60] for m in _INJECTION.finditer(text)]


def find_destructive_commands(text: str) -> list[str]:
    lowered = text.lower()
    return [
        m.group().strip()[:40]
        for trigger, pattern in _DESTRUCTIVE_BY_TRIGGER
        if trigger in lowered
        for m in pattern.finditer(text)
    ]


def find_privilege_text(text: str) -> list[str]:
    if not _triggered("privilege", text.lower()):
        return []
    return [m.group().strip()[:40] for m in _PRIVILEGE_TEXT.finditer(text)]


def is_external(domain: str, company_domains: Iterable[str]) -> bool:
    """A subdomain of a company domain is internal; a look-alike suffix is not."""
    domain = domain.lower().rstrip(".")
    return not any(domain == d or domain.endswith("." + d) for d in company_domains)


def detect(
    *,
    text: str,
    recipients: Iterable[str],
    type_words: Iterable[str],
    key_values: Iterable[tuple[str, str]],
    company_domains: Iterable[str],
    commands: Sequence[str] = (),
    default_region: str = "US",
) -> Indicators:
    """Indicators for one action.

    `text` is everything the agent wrote (summary, rationale, payload values,
    context); `recipients` the values of recipient-like payload fields;
    `type_words` the split action type and tool; `key_values` the payload's
    leaf key names with their string values; `commands` the shell commands
    and SQL the action would run.
    """
    domains = tuple(d.lower() for d in company_domains)
    emails = tuple(dict.fromkeys(m.group().lower() for m in EMAIL.finditer(text)))
    external = []
    for recipient in recipients:
        for m in EMAIL.finditer(recipient):
            if is_external(m.group(1), domains):
                external.append(m.group().lower())
        for m in _URL_HOST.finditer(recipient):
            if is_external(m.group(1), domains):
                external.append(m.group(1).lower())
    type_words = list(type_words)
    key_values = list(key_values)
    secrets = find_secrets(text)
    # A privilege noun in the name is a change only beside a verb that writes
    # ("iam.role.attach"), not in "list_roles".
    privilege = [w for w in type_words if w in PRIVILEGE_VERBS]
    access: list[str] = []
    writes = any(w in PRIVILEGE_WRITE_VERBS for w in type_words)
    if writes:
        privilege.extend(w for w in type_words if w in PRIVILEGE_WORDS)
        access.extend(w for w in type_words if w in ACCESS_WORDS)
    for key, value in key_values:
        low = key.lower()
        if low in SECRET_KEYS and value and len(value) >= 6 and "*" not in value:
            secrets.append(f"{key} field")
        if low in {"role", "roles", "permission", "permissions", "access_level", "access", "level", "group"}:
            role = value.lower().split("/")[-1]
            if role in _ELEVATED_ROLES:
                privilege.append(f"{key}={value}"[:40])
            elif role in _EDITING_ROLES:
                access.append(f"{key}={value}"[:40])
    privilege.extend(find_privilege_text(text))
    lowered = text.lower()
    dry_run = (_triggered("dry_run", lowered) and bool(_DRY_RUN.search(text))) or any(
        key.lower().replace("-", "_") in _DRY_RUN_KEYS and value.lower() in {"true", "1", "yes"}
        for key, value in key_values
    )
    # Each finder needs so many digits at least (a phone 7, an SSN 9, a card
    # 13): counting them once skips the scans that cannot match.
    digits = digit_count(text)
    read_only = all_read(list(commands))
    return Indicators(
        emails=emails,
        external_recipients=tuple(dict.fromkeys(external)),
        phones=tuple(dict.fromkeys(find_phones(text, default_region=default_region))) if digits >= 7 else (),
        cards=tuple(dict.fromkeys(find_cards(text))) if digits >= 13 else (),
        ibans=tuple(dict.fromkeys(find_ibans(text))) if digits >= 2 else (),
        ssns=tuple(dict.fromkeys(find_ssns(text))) if digits >= 9 else (),
        secrets=tuple(dict.fromkeys(secrets)),
        injection=tuple(dict.fromkeys(find_injection(text))),
        destructive_commands=tuple(
            dict.fromkeys(
                [hit for command in commands for hit in find_destructive_commands(strip_literals(command))]
                + [f"SQL {h.upper()}" for command in commands for h in heads(command) if h in _SQL_DESTRUCTIVE]
            )
        ),
        read_only_commands=read_only,
        writing_commands=bool(commands) and not read_only,
        destructive_verbs=tuple(dict.fromkeys(w for w in type_words if w in DESTRUCTIVE_VERBS)),
        privilege=tuple(dict.fromkeys(privilege)),
        access_change=tuple(dict.fromkeys(access)),
        public_share=_triggered("share", lowered) and bool(_EXTERNAL_SHARE.search(text)),
        dry_run=dry_run,
        sensitive_terms=tuple(dict.fromkeys(m.group().lower() for m in _SENSITIVE.finditer(text)))
        if _triggered("sensitive", lowered)
        else (),
    )
