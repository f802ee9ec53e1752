"""The words the router reads action names (and CLI commands) by: every verb family, defined once.

An action's type and tool are split into words (tokens.split_identifier) and
looked up here by the first rules (rules), the money floor (money), the
indicators (indicators), the features (features) and the command reader
(statements). The trained model's features depend on these words: changing a
list changes routes, so retrain and run the golden-set gate after any edit.

Several families share an idea but not their words, because each answers its
own question; none is a copy of another, so none is merged:

- reads: READ_FAMILY (the first rules let a name with one through; the model's
  `reads` family) has "draft" and "look"/"up"; READ_ONLY_VERBS (features: a
  name made only of reads sends nothing) adds what a report or estimate does
  (calculate, diff, download, estimate, explain, export, quote, report,
  summarize, validate); MONEY_READING_VERBS (money: a money name that only
  reads) is narrower, without check, count, diff, download, explain, export,
  report or summarize (an expense "report" is reimbursed), and with simulate;
  CLI_READ_VERBS are CLI subcommands (ls, logs, cat, plan...), not name words.
- writes: WRITE_VERBS (features: a name that does something) is the broad one;
  PRIVILEGE_WRITE_VERBS (indicators: beside which a privilege or access noun is
  a change) is narrower and has "make", "give", "edit", "bind" ("make X admin");
  MONEY_MAKING_VERBS (money: beside which a money noun moves money) has
  capture, confirm, issue, process...; CLI_WRITE_VERBS are CLI subcommands
  (cp, mv, rm, commit, rebase...).
- deletion: BLOCKING_FAMILIES["deletes data"] (the first rules block it) has
  archive, rm, rmdir; DESTRUCTIVE_VERBS (the destructive_verb indicator) has
  deleting, kill, reset, format, uninstall, deprovision, decommission, shred
  instead.
- money: BLOCKING_FAMILIES["moves money"] has invoice, order, payment;
  MONEY_VERBS and MAYBE_MONEY_VERBS (the money floor) tell a refund from a
  Drive "transfer_ownership" and add disburse, remit, reimburse, donate...
- permissions: BLOCKING_FAMILIES["changes permissions"] blocks on any of its
  words; PRIVILEGE_VERBS change privileges alone, PRIVILEGE_WORDS and
  ACCESS_WORDS only beside a PRIVILEGE_WRITE_VERBS verb.
- execution: BLOCKING_FAMILIES["runs shell or infrastructure"] blocks;
  EXEC_TYPE_WORDS (features: a payload "query" or "code" is a command) names
  interpreters (sql, psql, mysql, redis, cli) rather than deploys.
"""

from __future__ import annotations

# The first rules (rules.route) and the model's coarse families (features.featurize).
# A name with a word of a blocking family blocks under the first rules, whatever else it says.
BLOCKING_FAMILIES: dict[str, frozenset[str]] = {
    "moves money": frozenset(
        "refund refunds transfer transfers pay payment payout payouts charge charges "
        "withdraw wire invoice purchase buy sell trade order checkout".split()
    ),
    "deletes data": frozenset(
        "delete deletes remove destroy drop purge truncate wipe erase unlink rm rmdir "
        "terminate revoke cancel archive overwrite".split()
    ),
    "sends outside": frozenset(
        "send email mail message post publish tweet reply forward share sms notify invite upload".split()
    ),
    "changes permissions": frozenset(
        "grant permission permissions role roles admin sudo privilege acl iam policy chmod chown".split()
    ),
    "runs shell or infrastructure": frozenset(
        "shell exec execute bash sh cmd command terminal run script ssh terraform "
        "kubectl deploy scale reboot restart shutdown migrate".split()
    ),
}
# A name with one of these (and no blocking word) goes straight through under the first rules.
READ_FAMILY = frozenset(
    "get list read search lookup look up find fetch query view describe show "
    "retrieve count check status preview draft inspect browse".split()
)
# The model's `family=` features, in this order (names as feature names).
VERB_FAMILIES = {**{k.replace(" ", "_"): v for k, v in BLOCKING_FAMILIES.items()}, "reads": READ_FAMILY}

# Whether a name only reads (features.analyze): some of READ_ONLY_VERBS and none of WRITE_VERBS.
READ_ONLY_VERBS = frozenset(
    "get list read search lookup find fetch query view describe show retrieve count check status preview "
    "inspect browse download export quote estimate calculate diff validate explain report summarize".split()
)
WRITE_VERBS = frozenset(
    "create update delete remove send post put patch set add write insert upsert grant revoke transfer pay "
    "refund charge cancel publish share invite move rename archive apply deploy run execute exec drop purge "
    "destroy terminate disable enable approve submit merge push reply forward upload restore reset rotate "
    "assign attach detach modify change replace import sync scale restart stop start reboot kill void".split()
)
# Verbs after which a URL in the payload is where data goes, not what is read (features.analyze).
SENDING_VERBS = frozenset("submit post send upload publish share forward webhook put create fill".split())
# A name that searches: its payload "query" is a search, not a command (features.analyze).
SEARCH_VERBS = frozenset("search find grep lookup".split())
# A name that executes: its payload "query", "code", "input"... is a command (features.analyze).
EXEC_TYPE_WORDS = frozenset("shell bash terminal exec execute sql cli ssh psql mysql redis command".split())

# The money floor (money.moves_money).
# Verbs that move money whatever else the name says (`payments.refund`, `PayPalSendMoney`).
MONEY_VERBS = frozenset(
    "refund refunds payout payouts pay wire wires withdraw withdraws withdrawal withdrawals disburse disbursement "
    "disbursements remit remittance reimburse reimbursement donate donation".split()
)
# Words that move money only when nothing in the name says they are about
# something else: a Drive "transfer_ownership", a "charge_limit" on a car.
MAYBE_MONEY_VERBS = frozenset("transfer transfers charge charges purchase purchases buy checkout trade sell".split())
# Nouns that move money beside a verb that makes or sends something (`send_money`, `payment_intents.create`).
MONEY_NOUNS = frozenset("money funds cash payment payments".split())
MONEY_MAKING_VERBS = frozenset(
    "create make send execute initiate process capture confirm issue submit post move add complete release "
    "schedule trigger request approve run".split()
)
# What makes MAYBE_MONEY_VERBS about something else.
NOT_MONEY_OBJECTS = frozenset(
    "ownership owner owners file files folder folders document documents doc docs ticket tickets call calls chat "
    "chats conversation conversations case cases domain domains repo repos repository repositories project projects "
    "license licenses data device devices port limit battery vehicle car ev charger charging station stations queue "
    "lead leads contact contacts deal deals dispute disputes evidence method methods reminder reminders link links "
    "page pages".split()
)
# Verbs that make a money name a read (`payments.refund.status`, `payouts.list`); narrower than
# READ_ONLY_VERBS, where "report" and "export" are reads but an expense "report" is reimbursed.
MONEY_READING_VERBS = frozenset(
    "get list read search lookup find fetch query view describe show retrieve status preview quote estimate "
    "calculate inspect browse simulate validate".split()
)
# Every word that may say money moves.
MONEY_WORDS = MONEY_VERBS | MAYBE_MONEY_VERBS | MONEY_NOUNS
# Verbs that do something besides the money word itself: "refunds.create" moves money, "refund.status" reads.
DOING_VERBS = (WRITE_VERBS | MONEY_MAKING_VERBS) - MONEY_WORDS

# The indicators (indicators.detect).
# The destructive_verb indicator.
DESTRUCTIVE_VERBS = frozenset(
    "delete deletes deleting destroy drop purge truncate wipe erase remove unlink terminate "
    "overwrite shred revoke deprovision decommission uninstall reset format kill cancel".split()
)
# A privilege change on their own.
PRIVILEGE_VERBS = frozenset("grant grants granting elevate escalate impersonate sudo sudoers promote".split())
# Nouns that are a change only beside one of PRIVILEGE_WRITE_VERBS ("iam.role.attach", not "list_roles").
# Strong: the name is about who may administer. Weak: about who may see or
# edit a thing (sharing, access); the policy reviews those, the model decides more.
PRIVILEGE_WORDS = frozenset(
    "role roles privilege privileges iam admin admins administrator superuser policy acl acls security".split()
)
ACCESS_WORDS = frozenset(
    "permission permissions owner owners collaborator collaborators membership access sharing".split()
)
PRIVILEGE_WRITE_VERBS = frozenset(
    "add assign attach set update put create change modify make invite give transfer enable patch "
    "insert upsert edit bind".split()
)

# CLIs whose first word is a noun (`gcloud compute instances list`): a command
# segment reads when one of these appears and none of CLI_WRITE_VERBS does (statements).
CLI_READ_VERBS = frozenset(
    "list ls get describe show plan diff validate compile check status logs view inspect history top explain "
    "lookup-events get-instance-view search query read cat".split()
)
CLI_WRITE_VERBS = frozenset(
    "create delete update apply restart scale set push publish deploy run install uninstall destroy rm remove "
    "upgrade sync put patch insert drop alter truncate rollout start stop kill terminate attach detach grant "
    "revoke import tag merge reset rebase commit write cp mv chmod chown".split()
)
