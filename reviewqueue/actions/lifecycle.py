"""The lifecycle of an action: the only package that changes its status.

Every change is a conditional UPDATE on the status it leaves (so two writers
can't both win), writes its audit event in the same transaction, and wakes
long-polls after commit.

    pending ──approve──▶ approved          auto/async_review start approved
       │  ───reject───▶ rejected           async_review: awaiting_review
       │  ───expire───▶ expired              ──confirm──▶ confirmed
       │  ───cancel───▶ cancelled            ──flag─────▶ flagged
       └──── halt ────▶ halted

The work is cut by who acts: submit (the agent's submission), follow (the
agent's cancel and outcome), review (reviewers' claims and decisions), halt
(the kill switch's bulk halt), clock (the SLA's escalations and expiries),
all through transitions. This module is their one public face.
"""

from reviewqueue.actions.clock import sla_sweep
from reviewqueue.actions.follow import action_cancel, action_record_outcome
from reviewqueue.actions.halt import actions_flag_for_review, actions_halt
from reviewqueue.actions.review import (
    AlreadyDecided,
    Proposal,
    action_claim,
    action_decide,
    action_escalate,
    action_release,
    action_review,
    proposal_of,
)
from reviewqueue.actions.submit import Submission, Submitted, action_submit, request_fingerprint

__all__ = [
    "AlreadyDecided",
    "Proposal",
    "Submission",
    "Submitted",
    "action_cancel",
    "action_claim",
    "action_decide",
    "action_escalate",
    "action_record_outcome",
    "action_release",
    "action_review",
    "action_submit",
    "actions_flag_for_review",
    "actions_halt",
    "proposal_of",
    "request_fingerprint",
    "sla_sweep",
]
