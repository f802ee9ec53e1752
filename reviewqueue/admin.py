"""Admin: agents (with key rotation), actions, kill switches, and the audit
trail, which is read-only here as everywhere."""

import json

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join

from reviewqueue.core import roles
from reviewqueue.core.errors import Forbidden
from reviewqueue.credentials.keys import agent_add, agent_change, agent_key_issue, agent_keys_revoke, agent_owners_set
from reviewqueue.models import (
    Action,
    Agent,
    ApiKey,
    AuditEvent,
    CircuitBreaker,
    KillSwitch,
    NotificationChannel,
    OutboxMessage,
    SlaPolicy,
)
from reviewqueue.privacy import masking as privacy


def _actor(request) -> str:
    return f"user:{request.user.get_username()}"


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("prefix", "created_at", "expires_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "scopes", "rate_limit_per_minute", "is_active", "created_at")
    search_fields = ("name",)
    filter_horizontal = ("owners",)
    inlines = [ApiKeyInline]
    actions = ["rotate_key", "revoke_keys"]

    def save_model(self, request, obj, form, change):
        """Through the same audited service as `manage.py create_agent` (scope changes are audited)."""
        if change:
            agent_change(agent=obj, actor=_actor(request))
        else:
            key = agent_add(agent=obj, actor=_actor(request))
            request.reviewqueue_secrets = [{"agent": obj, "key": key, "webhook_secret": obj.webhook_secret}]

    def save_related(self, request, form, formsets, change):
        """Owners (a many-to-many field) are set by the audited service, not by the form."""
        owners = {user.pk for user in form.cleaned_data.pop("owners", [])}  # popped: the form's save_m2m skips it
        super().save_related(request, form, formsets, change)
        agent_owners_set(agent=form.instance, owner_ids=owners, actor=_actor(request))

    def response_add(self, request, obj, post_url_continue=None):
        if shown := getattr(request, "reviewqueue_secrets", None):
            return secrets_page(request, self, title=f"Agent {obj.name} created", rows=shown)
        return super().response_add(request, obj, post_url_continue)

    @admin.action(description="Rotate key (old keys stop working at once)")
    def rotate_key(self, request, queryset):
        rows = [{"agent": agent, "key": agent_key_issue(agent=agent, actor=_actor(request))} for agent in queryset]
        return secrets_page(request, self, title="New keys", rows=rows)

    @admin.action(description="Revoke all keys")
    def revoke_keys(self, request, queryset):
        for agent in queryset:
            count = agent_keys_revoke(agent=agent, actor=_actor(request))
            self.message_user(request, f"Revoked {count} key(s) of {agent.name}.")


def secrets_page(request, model_admin, *, title: str, rows: list[dict]) -> TemplateResponse:
    """New secrets shown once, in this response only. Never through
    django.contrib.messages: its default storage is a cookie (then the
    session), which would carry a secret to the browser's disk and into the
    next page. The page itself must not be cached."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "rows": rows,
        "opts": model_admin.model._meta,
    }
    response = TemplateResponse(request, "admin/reviewqueue/agent/secrets_shown.html", context)
    add_never_cache_headers(response)
    return response


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


_MASKED_JSON = ("payload", "approved_payload", "context", "risk_reasons")
_MASKED_TEXT = ("summary", "rationale", "decision_note", "review_note", "outcome_detail")
# Filters a URL may carry: a lookup on any other field (?payload__icontains=…) would probe masked data.
_FILTERABLE = frozenset(
    {
        "id",
        "agent",
        "action_type",
        "tool",
        "status",
        "tier",
        "review_state",
        "created_at",
        "conversation_id",
        "four_eyes",
        "risk_score",
    }
)


def _payload_of(obj):
    """The payload of the action a row belongs to: its values are masked as that payload's tokens."""
    return obj.action.payload if obj.action_id else None


def _masked_json(name: str, like=lambda action: action.payload):
    """A read-only field showing one JSON column masked, the agent's payload's values as its tokens."""

    @admin.display(description=name.replace("_", " "))
    def show(self, obj):
        value = getattr(obj, name)
        if value is None:
            return "-"
        masked = privacy.payload_mask(value, like=None if name == "payload" else like(obj)).value
        return format_html('<pre class="masked">{}</pre>', json.dumps(masked, indent=2, ensure_ascii=False))

    return show


class MaskedReadOnlyAdmin(ReadOnlyAdmin):
    """Read-only, its JSON columns in `masked_json` shown masked (as `masked_<name>`) and never filtered on
    from the URL (?body__icontains=… would probe what the page masks)."""

    masked_json: tuple[str, ...] = ()

    def get_fields(self, request, obj=None):
        return [f"masked_{f.name}" if f.name in self.masked_json else f.name for f in self.model._meta.concrete_fields]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def lookup_allowed(self, lookup, value, request=None):
        return lookup.split("__", 1)[0] not in self.masked_json and super().lookup_allowed(lookup, value, request)


def _masked_text(name: str):
    @admin.display(description=name.replace("_", " "))
    def show(self, action):
        return privacy.text_mask(getattr(action, name), like=action.payload) or "-"

    return show


@admin.register(Action)
class ActionAdmin(ReadOnlyAdmin):
    """Actions with personal data masked as on the dashboard (payloads, edits, summary, rationale, context,
    notes). Users who may reveal get a button that shows them in the clear, audited like the dashboard's."""

    list_display = (
        "created_at",
        "agent",
        "action_type",
        "masked_summary",
        "tier",
        "status",
        "review_state",
        "risk_score",
    )
    list_filter = ("status", "tier", "review_state")
    list_select_related = ("agent",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    change_form_template = "admin/reviewqueue/action/change_form.html"

    masked_payload, masked_approved_payload = _masked_json("payload"), _masked_json("approved_payload")
    masked_context, masked_risk_reasons = _masked_json("context"), _masked_json("risk_reasons")
    masked_rationale, masked_decision_note = _masked_text("rationale"), _masked_text("decision_note")
    masked_review_note, masked_outcome_detail = _masked_text("review_note"), _masked_text("outcome_detail")

    # Not the summary: a search would find text everyone sees masked (a probe of it), seniors too.
    search_fields = ("action_type", "conversation_id")

    def lookup_allowed(self, lookup, value, request=None):
        return lookup.split("__", 1)[0] in _FILTERABLE and super().lookup_allowed(lookup, value, request)

    def get_fields(self, request, obj=None):
        masked = {*_MASKED_JSON, *_MASKED_TEXT}
        # The hash of a payload would let anyone test guesses of its masked values offline.
        hidden = set() if roles.may_reveal(request.user) else {"approved_payload_sha256"}
        return [
            *(
                f"masked_{f.name}" if f.name in masked else f.name
                for f in Action._meta.concrete_fields
                if f.name not in hidden
            ),
            "masked_decisions",
        ]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description="summary")
    def masked_summary(self, action):
        return privacy.text_mask(action.summary, like=action.payload)[:120]

    @admin.display(description="decisions")
    def masked_decisions(self, action):
        rows = [
            (
                d.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                d.get_kind_display(),
                d.user.get_username(),
                privacy.text_mask(d.note, like=action.payload),
                ""
                if d.edited_payload is None
                else json.dumps(
                    privacy.payload_mask(d.edited_payload, like=action.payload).value, indent=2, ensure_ascii=False
                ),
            )
            for d in action.decisions.select_related("user").order_by("created_at")
        ]
        if not rows:
            return "-"
        return format_html(
            "<table>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>", rows),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "may_reveal": roles.may_reveal(request.user)}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        reveal = path(
            "<path:object_id>/reveal/", self.admin_site.admin_view(self.reveal_view), name="reviewqueue_action_reveal"
        )
        return [reveal, *super().get_urls()]

    def reveal_view(self, request, object_id):
        """The action's personal data in the clear (POST only), audited as the dashboard's reveal is."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        action = self.get_object(request, unquote(object_id))
        if action is None or not self.has_view_permission(request, action):
            raise Http404("No such action.")
        try:
            revealed = privacy.action_reveal(action=action, user=request.user, via="admin")
        except Forbidden as exc:
            raise PermissionDenied(exc.message) from None

        def shown(value):
            return "-" if value is None else json.dumps(value, indent=2, ensure_ascii=False)

        return TemplateResponse(
            request,
            "admin/reviewqueue/action/reveal.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": action,
                "title": f"Personal data of {action}",
                "revealed": revealed,
                "fields": [
                    ("summary", revealed.summary),
                    ("rationale", revealed.rationale or "-"),
                    ("payload", shown(revealed.payload)),
                    ("approved payload", shown(revealed.approved_payload)),
                    ("context", shown(revealed.context)),
                ],
                "edits": [(d, shown(p)) for d, p in revealed.edited_payloads],
            },
        )


@admin.register(AuditEvent)
class AuditEventAdmin(MaskedReadOnlyAdmin):
    masked_json = ("data",)
    masked_data = _masked_json("data", like=_payload_of)
    list_display = ("seq", "created_at", "kind", "actor", "action_link", "short_hash")
    list_filter = ("kind",)
    search_fields = ("actor", "kind")
    show_full_result_count = False

    @admin.display(description="action")
    def action_link(self, event):
        if not event.action_id:
            return ""
        return format_html('<a href="../action/{}/change/">{}</a>', event.action_id, event.action_id)

    @admin.display(description="hash")
    def short_hash(self, event):
        return event.hash[:12]


@admin.register(KillSwitch)
class KillSwitchAdmin(ReadOnlyAdmin):
    list_display = ("scope", "engaged", "reason", "changed_by", "changed_at")


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ("prefix", "agent", "user", "created_at", "expires_at", "revoked_at")


@admin.register(SlaPolicy)
class SlaPolicyAdmin(admin.ModelAdmin):
    list_display = ("tier", "action_type_pattern", "sla", "steps", "priority")
    list_filter = ("tier",)


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "group", "kind", "target", "events", "is_active")
    list_filter = ("kind", "group", "is_active")


@admin.register(OutboxMessage)
class OutboxMessageAdmin(MaskedReadOnlyAdmin):
    """Dead letters are here: filter by status = dead. Bodies (an agent webhook carries the payload) are masked."""

    masked_json = ("body",)
    masked_body = _masked_json("body", like=_payload_of)

    list_display = ("created_at", "event", "kind", "endpoint", "status", "attempts", "last_error")
    list_filter = ("status", "kind", "event")
    search_fields = ("endpoint", "event")
    show_full_result_count = False


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(ReadOnlyAdmin):
    list_display = ("endpoint", "open_until", "probe_started_at")


class AdminLoginForm(AdminAuthenticationForm):
    """A reviewer or ops user with the right password is told where they sign
    in, instead of Django's "enter the correct username and password for a
    staff account", which reads as if the password were wrong."""

    def confirm_login_allowed(self, user):
        if user.is_active and not user.is_staff:
            raise ValidationError(
                "The admin is for admins. Reviewers and ops work in the dashboard: sign in at /accounts/login/.",
                code="not_staff",
            )
        super().confirm_login_allowed(user)


admin.site.login_form = AdminLoginForm
