"""Reviewer and ops pages: parse, select, call one service, render a page or fragment.

One template holds each page and its htmx fragments (`page.html#fragment`).
Agent content is hostile: templates only ever print it autoescaped, and the
CSP forbids inline script and style.
"""

from __future__ import annotations

import json
import uuid
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from reviewqueue.actions import lifecycle
from reviewqueue.actions.kill_switches import kill_switch_set
from reviewqueue.controls.killswitch import scope_validate
from reviewqueue.core import roles
from reviewqueue.core.errors import (
    BodyTooLarge,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    MalformedJson,
    NotFound,
    ServiceError,
)
from reviewqueue.core.jsonbody import parse_json_body
from reviewqueue.models import Action, Status, Tier
from reviewqueue.privacy import masking as privacy
from reviewqueue.queries import selectors
from reviewqueue.queries.selectors import QueueFilters, Tab


class HtmxHttpRequest(HttpRequest):
    """A signed-in user's request (every view here is login_required), maybe from htmx."""

    htmx: HtmxDetails
    user: User


def _access(view):
    """Service errors from selectors become Django's 403/404 pages."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except NotFound:
            raise Http404("No such action.") from None
        except Forbidden as exc:
            raise PermissionDenied(exc.message) from None

    return wrapped


# ----------------------------------------------------------------- queues ---


@require_GET
@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    """Reviewers land on their queue, ops on the kill switches."""
    if roles.may_review(request.user):
        return redirect("queue", tab=Tab.BLOCKING)
    if roles.may_operate(request.user):
        return redirect("kill_switches")
    raise PermissionDenied("Your account has no reviewer or ops role yet; ask an admin.")


@require_GET
@login_required
@_access
def queue(request: HtmxHttpRequest, tab: str) -> HttpResponse:
    """One tab of the queue; htmx polls its rows so new items appear without a reload."""
    try:
        tab = Tab(tab)
    except ValueError:
        raise Http404("No such queue.") from None
    filters, filter_errors = QueueFilters.parse(request.GET)
    cursor = request.GET.get("after") or None
    page = selectors.queue_page(
        user=request.user,
        tab=tab,
        filters=filters,
        cursor=cursor,
        limit=settings.REVIEWQUEUE["QUEUE_PAGE_SIZE"],
    )
    context = {
        "tab": tab,
        "tab_label": selectors.TAB_LABELS[tab],
        "page": page,
        "filters": filters,
        "rows": _rows(page.rows, tab),
        "filter_errors": filter_errors,
        "filter_query": filters.query(),
        "cursor": cursor,
        "poll_seconds": settings.REVIEWQUEUE["QUEUE_POLL_SECONDS"],
    }
    if request.htmx:
        return render(request, "reviewqueue/queue.html#rows", context)
    context["agents"] = selectors.agents_for_filter()
    return render(request, "reviewqueue/queue.html", context)


@require_GET
@login_required
def nav(request: HtmxHttpRequest) -> HttpResponse:
    """The nav counts and the kill-switch banner, refreshed by polling."""
    tab = request.GET.get("tab", "")
    return render(request, "reviewqueue/base.html#live-nav", {"tab": tab if tab in Tab._value2member_map_ else ""})


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rows(rows: list[selectors.QueueRow], tab: Tab) -> list[dict]:
    """Each row's display values, computed once in Python.

    Rendering 50 rows is the queue page's main cost; plain dict lookups in the
    template keep it well inside the 100 ms budget at any queue depth.
    Personal data in summaries and reasons is masked for everyone, seniors too
    (before cutting, so a cut never leaves part of a value unmasked).
    """
    shown = privacy.text_mask
    now = timezone.now()
    base = reverse("action", args=[uuid.UUID(int=0)]).replace(str(uuid.UUID(int=0)), "{}")
    out = []
    for row in rows:
        a = row.action
        reasons = a.risk_reasons if isinstance(a.risk_reasons, list) else []
        item = {
            "id": str(a.pk),
            "href": base.format(a.pk),
            "summary": _short(shown(a.summary), 160),
            "reason": _short(shown(str(reasons[0])), 110) if reasons else "",
            "more": max(len(reasons) - 1, 0),
            "agent": a.agent.name,
            "action_type": a.action_type,
            "score": f"{a.risk_score:.2f}",
            "tier": a.tier,
            "four_eyes": a.four_eyes,
            "escalated_to": a.escalated_to,
            "sla_iso": a.sla_due_at.isoformat() if a.sla_due_at else "",
            "sla_text": a.sla_due_at.strftime("due %H:%M:%S UTC") if a.sla_due_at else "",
            "claimed_by": a.claimed_by.get_username()
            if a.claimed_by and a.claim_expires_at and a.claim_expires_at > now
            else "",
        }
        if row.decision is not None:
            d = row.decision
            item.update(
                kind=d.kind,
                kind_label=d.get_kind_display(),
                decided_iso=d.created_at.isoformat(),
                decided_text=d.created_at.strftime("%Y-%m-%d %H:%M"),
                decided_by=d.user.get_username(),
            )
        out.append(item)
    return out


# ---------------------------------------------------------- action's page ---


def _page_context(request, action: Action, **extra) -> dict:
    user = request.user
    ctx = selectors.action_context(action=action)
    masked = privacy.payload_mask(action.payload)
    previous, following = selectors.action_neighbours(user=user, action=action)
    proposal = lifecycle.proposal_of(action, ctx.decisions)  # what an approval now approves, and who did
    context = {
        "action": action,
        "ctx": ctx,
        "masked_payload": json.dumps(masked.value, indent=2, ensure_ascii=False),
        "masked_count": masked.count,
        "masked_texts": privacy.text_fields_masked(action),
        "editable": masked.editable,
        "edit_text": extra.pop("edit_text", None) or json.dumps(masked.value, indent=2, ensure_ascii=False),
        "may_reveal": roles.may_reveal(user),
        "revealed": False,  # the action's text in the clear: only after an audited reveal
        "refusal": roles.decide_refusal(user=user, action=action, owner_ids=ctx.owner_ids),
        "escalation_refusal": roles.escalation_refusal(user=user, group=roles.Role.SENIOR_REVIEWER),
        "is_open_blocking": action.is_open_blocking,
        "is_open_async": action.is_open_async,
        "is_open": action.is_open,
        "proposal": proposal,
        "payload_seal": privacy.payload_seal(action.pk, proposal.sha256),
        "approved_by_me": user.pk in proposal.approvers_of(proposal.sha256),
        "pending_edit_diff": (
            privacy.payload_diff(action.payload, proposal.payload) if proposal.payload != action.payload else None
        ),
        "approved_diff": (
            privacy.payload_diff(action.payload, action.approved_payload)
            if action.approved_payload is not None and action.approved_payload != action.payload
            else None
        ),
        "previous_id": previous,
        "next_id": following,
        "claim_held_by_me": action.claimed_by_id == user.pk,
        "initial_claim": action.claimed_by_id != user.pk,
        "now_at": timezone.now(),
    }
    context.update(extra)
    return context


@require_GET
@login_required
@_access
def action_page(request: HtmxHttpRequest, action_id: uuid.UUID) -> HttpResponse:
    """Everything a reviewer needs to decide one action, and the forms to do it."""
    action = selectors.action_get_for_reviewer(user=request.user, action_id=action_id)
    return render(request, "reviewqueue/action.html", _page_context(request, action))


@require_POST
@login_required
@_access
def action_claim(request: HtmxHttpRequest, action_id: uuid.UUID) -> HttpResponse:
    """Take or renew the lease (htmx on load and every minute); answers the claim banner."""
    action = selectors.action_get_for_reviewer(user=request.user, action_id=action_id)
    if request.POST.get("release"):
        action = lifecycle.action_release(action=action, user=request.user)
    else:
        _, action = lifecycle.action_claim(
            action=action,
            user=request.user,
            take_over=bool(request.POST.get("take_over")),
        )
    context = {
        "action": action,
        "claim_held_by_me": action.claimed_by_id == request.user.pk,
        "closed": not action.is_open,
        "now_at": timezone.now(),
    }
    if request.htmx:
        return render(request, "reviewqueue/action.html#claim", context)
    return redirect("action", action_id=action.pk)


@require_POST
@login_required
@_access
def action_reveal(request: HtmxHttpRequest, action_id: uuid.UUID) -> HttpResponse:
    """The payload, summary, rationale and risk reasons in the clear, for a user allowed to see
    them; every reveal is audited. htmx gets the payload and, out of band, the title, rationale
    and reasons; otherwise the whole page with them in the clear (everything else stays masked)."""
    action = selectors.action_get_for_reviewer(user=request.user, action_id=action_id)
    payload = privacy.action_reveal(action=action, user=request.user).payload
    revealed = json.dumps(payload, indent=2, ensure_ascii=False)
    if request.htmx:
        return render(
            request,
            "reviewqueue/action.html#reveal-answer",
            {"action": action, "revealed_payload": revealed, "revealed": True, "oob": True},
        )
    return render(
        request, "reviewqueue/action.html", _page_context(request, action, revealed_payload=revealed, revealed=True)
    )


def _parse_edit(text: str) -> dict:
    """The reviewer's edit of the masked payload, validated; its tokens still in place."""
    try:
        edited = parse_json_body(text.encode())
    except (MalformedJson, InvalidInput, BodyTooLarge) as exc:
        raise InvalidInput(exc.message) from None
    if not isinstance(edited, dict):
        raise InvalidInput("The payload must be a JSON object ({ … }).")
    return edited


@require_POST
@login_required
@_access
def action_edit_preview(request: HtmxHttpRequest, action_id: uuid.UUID) -> HttpResponse:
    """Validate an edit as the reviewer types and show its diff; changes nothing.

    The diff is of the masked forms (the originals are never put back here), so
    no trick with the tokens can show a masked value or confirm a guess of one.
    """
    action = selectors.action_get_for_reviewer(user=request.user, action_id=action_id)
    context: dict[str, Any] = {"action": action}
    try:
        context["diff"] = privacy.edit_diff(action.payload, _parse_edit(request.POST.get("payload", "")))
    except InvalidInput as exc:
        context["edit_error"] = exc.message
    return render(request, "reviewqueue/action.html#edit-preview", context)


_SUCCESS = {
    "approve": "You approved",
    "edit": "You edited and approved",
    "reject": "You rejected",
    "escalate": "You escalated to senior reviewers",
    "confirm": "You confirmed",
    "flag": "You flagged",
}


def _still_pending(*, edited: bool, newly_four_eyes: bool) -> str:
    """What a reviewer is told when their approval leaves the action pending."""
    if edited and newly_four_eyes:
        return (
            "Your edit changed the risk (see the reasons): it now needs four eyes. Your approval of the edited "
            "payload is recorded; another reviewer must approve it before the agent may execute it."
        )
    if edited:
        return (
            "Your approval of the edited payload is recorded; another reviewer must approve this exact payload "
            "before the agent may execute it (four eyes)."
        )
    return "Your approval is recorded; a second reviewer must approve this exact payload too (four eyes)."


def _seen_sha256(action: Action, seal: str | None) -> str | None:
    """The SHA-256 of the payload the approver's page showed, from the seal the page carried.

    A seal that no longer matches the current proposal is passed on as it is,
    so the decision is refused as made on a payload that changed since.
    """
    if not seal:
        return None
    proposal = lifecycle.proposal_of(action, list(action.decisions.select_related("user").order_by("created_at")))
    return proposal.sha256 if privacy.seal_matches(action.pk, proposal.sha256, seal) else seal


@require_POST
@login_required
@_access
def action_decide(request: HtmxHttpRequest, action_id: uuid.UUID) -> HttpResponse:
    """Apply one decision; on success go to the next item of the queue.

    Losing a race is not an error: the page shows who decided and how.
    """
    user = request.user
    action = selectors.action_get_for_reviewer(user=user, action_id=action_id)
    decision = request.POST.get("decision", "")
    note = request.POST.get("note", "")
    tab = Tab.ASYNC if action.tier == Tier.ASYNC_REVIEW else Tab.BLOCKING
    try:
        if decision in ("approve", "reject"):
            result = lifecycle.action_decide(
                action=action,
                user=user,
                approve=decision == "approve",
                note=note,
                seen_sha256=_seen_sha256(action, request.POST.get("payload_seal")),
            )
        elif decision == "edit":
            if not privacy.payload_mask(action.payload).editable:
                raise InvalidInput("This payload can't be edited here (it contains ⟦ or ⟧).")
            edited = privacy.payload_unmask(_parse_edit(request.POST.get("payload", "")), original=action.payload)
            result = lifecycle.action_decide(action=action, user=user, approve=True, note=note, edited_payload=edited)
        elif decision == "escalate":
            result = lifecycle.action_escalate(action=action, user=user, note=note)
        elif decision in ("confirm", "flag"):
            result = lifecycle.action_review(action=action, user=user, flag=decision == "flag", note=note)
        else:
            raise InvalidInput("Choose a decision.")
    except lifecycle.AlreadyDecided as exc:
        messages.warning(request, f"Too late: {exc.message}")
        return redirect("action", action_id=action.pk)
    except (InvalidInput, IllegalTransition, Forbidden) as exc:
        action.refresh_from_db()
        # Masked as the page is: a refusal may quote the (unmasked) edit or its routing.
        extra = {
            "form_error": privacy.text_mask(exc.message, like=action.payload),
            "form_decision": decision,
            "form_note": note,
        }
        if decision == "edit":
            extra["edit_text"] = request.POST.get("payload", "")
        status = 403 if isinstance(exc, Forbidden) else 422
        return render(request, "reviewqueue/action.html", _page_context(request, action, **extra), status=status)
    if result.status == Status.PENDING and decision in ("approve", "edit"):
        messages.info(request, _still_pending(edited=decision == "edit", newly_four_eyes=not action.four_eyes))
        return redirect("action", action_id=action.pk)
    messages.success(request, f"{_SUCCESS[decision]} “{privacy.text_mask(action.summary)[:120]}”.")
    following = selectors.queue_first(user=user, tab=tab)
    if following:
        return redirect("action", action_id=following)
    return redirect("queue", tab=tab)


# -------------------------------------------------------------------- ops ---


@require_GET
@login_required
@_access
def kill_switches(request: HtmxHttpRequest) -> HttpResponse:
    """Every switch, and the form to engage or release one."""
    selectors.require_ops(request.user)
    return render(
        request,
        "reviewqueue/kill_switches.html",
        {
            "switches": selectors.kill_switches_all(),
            "agents": selectors.agents_for_filter(),
        },
    )


def _scope_from(post) -> str:
    if post.get("scope"):
        return post["scope"].strip()
    kind, value = post.get("scope_kind", "global"), post.get("scope_value", "").strip()
    return "global" if kind == "global" else f"{kind}:{value}"


@require_POST
@login_required
@_access
def kill_switch_change(request: HtmxHttpRequest) -> HttpResponse:
    """Engage or release a switch: first a confirmation page, then the change."""
    selectors.require_ops(request.user)
    scope = _scope_from(request.POST)
    engage = request.POST.get("engaged") == "true"
    reason = request.POST.get("reason", "").strip()
    error = None
    try:
        scope_validate(scope)
        if not reason:
            error = "A reason is required."
    except ServiceError as exc:
        error = exc.message
    if error:
        return render(
            request,
            "reviewqueue/kill_switches.html",
            {
                "switches": selectors.kill_switches_all(),
                "agents": selectors.agents_for_filter(),
                "form_error": error,
                "form": request.POST,
            },
            status=422,
        )
    if request.POST.get("confirmed") != "yes":
        return render(
            request,
            "reviewqueue/kill_switch_confirm.html",
            {
                "scope": scope,
                "engage": engage,
                "reason": reason,
                "reach": selectors.kill_switch_reach(scope) if engage else None,
            },
        )
    _, halted = kill_switch_set(scope=scope, engaged=engage, reason=reason, actor=f"user:{request.user.get_username()}")
    if engage:
        messages.warning(request, f"Kill switch {scope} engaged; {halted} pending action(s) halted.")
    else:
        messages.success(request, f"Kill switch {scope} released.")
    return redirect("kill_switches")
