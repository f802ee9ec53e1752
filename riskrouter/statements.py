"""Reading the shell commands and SQL an action would run.

Only what would execute counts: quoted literals are blanked first, so
`grep 'rm -rf' scripts/` is a read and `SELECT … WHERE action = 'DROP'` is too,
while `EXPLAIN ANALYZE DELETE …` is a delete (ANALYZE runs the statement).
"""

from __future__ import annotations

import re

from .vocabulary import CLI_READ_VERBS, CLI_WRITE_VERBS

_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|\$\$.*?\$\$", re.DOTALL)
_SEGMENTS = re.compile(r"\|\|?|&&|;|\n|\$\(|\bthen\b|\bdo\b")
_WORD = re.compile(r"[A-Za-z_][\w.-]*")
_PREFIXES = frozenset("sudo env nohup time nice timeout xargs exec command builtin".split())

# Leading words of commands and statements that only read.
READ_HEADS = frozenset(
    "select show explain describe desc ls ll du df cat less more head tail grep egrep fgrep rg ag find wc sort uniq "
    "cut tr awk jq yq ps top htop free uptime stat file which whereis echo printf pwd whoami id date env printenv "
    "hostname uname lsof netstat ss dig nslookup host ping traceroute tree diff md5sum sha256sum test true journalctl "
    "info scan keys get mget hget hgetall smembers lrange zrange ttl pttl type exists strlen llen scard dbsize "
    "with values table".split()
)
# Subcommands that read, for tools whose first word says little.
READ_SUBCOMMANDS = {
    "git": frozenset(
        "status log diff show branch remote fetch blame grep ls-files rev-parse describe shortlog".split()
    ),
    "kubectl": frozenset("get describe logs top diff explain version api-resources auth cluster-info".split()),
    "helm": frozenset("diff list ls status template get history show search lint".split()),
    "terraform": frozenset("plan show validate output fmt version providers state graph".split()),
    "docker": frozenset("ps logs inspect images stats version info top".split()),
    "aws": frozenset("describe list get".split()),
    "gcloud": frozenset("describe list get".split()),
    "systemctl": frozenset("status list-units is-active is-enabled show cat".split()),
    "npm": frozenset("ls list outdated view audit".split()),
    "pip": frozenset("list show freeze check".split()),
}
SQL_WRITES = frozenset(
    "insert update delete drop truncate alter create grant revoke merge copy replace upsert rename "
    "vacuum reindex cluster comment call do set".split()
)


def strip_literals(command: str) -> str:
    return _QUOTED.sub("''", command)


def heads(command: str) -> list[str]:
    """The verb of every pipeline segment and statement: `sudo du … | sort` → [du, sort]."""
    found: list[str] = []
    for segment in _SEGMENTS.split(strip_literals(command)):
        words = [w.lower() for w in _WORD.findall(segment)]
        while words and (words[0] in _PREFIXES or "=" in words[0]):
            words.pop(0)
        if not words:
            continue
        head = words[0]
        if head == "explain":
            # EXPLAIN ANALYZE runs the statement; plain EXPLAIN only plans it.
            if len(words) > 1 and words[1] == "analyze":
                rest = [w for w in words[2:] if w not in {"verbose", "buffers", "format", "json", "costs"}]
                found.append(rest[0] if rest else "explain")
                continue
            found.append("explain")
            continue
        if head in READ_SUBCOMMANDS:
            sub = next((w for w in words[1:] if not w.startswith("-")), "")
            found.append(f"{head}_{sub}" if sub else head)
            continue
        found.append(head)
    return found


def segment_is_read(command: str) -> bool:
    """For CLIs whose first word is a noun (`gcloud compute instances list`): a read verb and no write verb."""
    words = [w.lower() for w in _WORD.findall(strip_literals(command)) if not w.startswith("-")]
    return bool(set(words) & CLI_READ_VERBS) and not set(words) & CLI_WRITE_VERBS


def head_is_read(head: str) -> bool:
    if "_" in head:
        tool, _, sub = head.partition("_")
        if tool in READ_SUBCOMMANDS:
            return sub in READ_SUBCOMMANDS[tool] or any(sub.startswith(s + "-") for s in READ_SUBCOMMANDS[tool])
    return head in READ_HEADS


_SQL_HEADS = frozenset("select with explain show describe desc values table".split())
_REDIRECT = re.compile(r"(?<![<>=!2&-])>{1,2}\s*[\w/.~$]")


def all_read(commands: list[str]) -> bool:
    """True when there are commands and every one of their verbs only reads (no shell redirect to a file)."""
    if not commands:
        return False
    for command in commands:
        found = heads(command)
        if found and found[0] not in _SQL_HEADS and _REDIRECT.search(strip_literals(command).replace("/dev/null", "")):
            return False
        if not (found and all(head_is_read(h) for h in found)) and not segment_is_read(command):
            return False
    return True
