"""The action as agents see it (API.md); used by the API and by webhooks."""

from __future__ import annotations

from typing import Any

from reviewqueue.models import Action


def action_json(action: Action) -> dict[str, Any]:
    decision = None
    if action.decided_at and action.decision_by_label:
        decision = {"by": action.decision_by_label, "note": action.decision_note}
    return {
        "id": str(action.pk),
        "action_type": action.action_type,
        "tool": action.tool,
        "summary": action.summary,
        "conversation_id": action.conversation_id,
        "status": action.status,
        "may_execute": action.may_execute,
        "tier": action.tier,
        "risk": {
            "score": action.risk_score,
            "reasons": action.risk_reasons,
            "model_version": action.model_version,
            "policy_version": action.policy_version,
            "probabilities": action.risk_probabilities,
        },
        "review_state": action.review_state,
        "payload": action.payload,
        "approved_payload": action.approved_payload,
        "approved_payload_sha256": action.approved_payload_sha256 or None,
        "sla_due_at": action.sla_due_at,
        "escalation_level": action.escalation_level,
        "escalated_at": action.escalated_at,
        "created_at": action.created_at,
        "updated_at": action.updated_at,
        "decided_at": action.decided_at,
        "decision": decision,
        "outcome": {
            "status": action.outcome,
            "detail": action.outcome_detail,
            "at": action.outcome_at,
            "duration_ms": action.outcome_duration_ms,
            "error_kind": action.outcome_error_kind,
            "attempt": action.outcome_attempt,
        }
        if action.outcome
        else None,
    }
