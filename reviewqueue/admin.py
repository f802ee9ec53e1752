"""Admin: agents (with key rotation), actions, kill switches, and the audit
trail, which is read-only here as everywhere."""

from django.contrib import admin, messages
from django.utils.html import format_html

from .credentials import agent_key_issue, agent_keys_revoke
from .models import (
    Action, Agent, ApiKey, AuditEvent, CircuitBreaker, KillSwitch, NotificationChannel, OutboxMessage, SlaPolicy,
)


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
        super().save_model(request, obj, form, change)
        if not change:
            key = agent_key_issue(agent=obj, actor=_actor(request))
            self.message_user(
                request, f"Key for {obj.name} (shown once, copy it now): {key}", messages.WARNING
            )

    @admin.action(description="Rotate key (old keys stop working at once)")
    def rotate_key(self, request, queryset):
        for agent in queryset:
            key = agent_key_issue(agent=agent, actor=_actor(request))
            self.message_user(request, f"New key for {agent.name} (shown once): {key}", messages.WARNING)

    @admin.action(description="Revoke all keys")
    def revoke_keys(self, request, queryset):
        for agent in queryset:
            count = agent_keys_revoke(agent=agent, actor=_actor(request))
            self.message_user(request, f"Revoked {count} key(s) of {agent.name}.")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Action)
class ActionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "agent", "action_type", "tier", "status", "review_state", "risk_score")
    list_filter = ("status", "tier", "review_state")
    search_fields = ("action_type", "summary", "conversation_id")
    list_select_related = ("agent",)
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
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
class OutboxMessageAdmin(ReadOnlyAdmin):
    """Dead letters are here: filter by status = dead."""

    list_display = ("created_at", "event", "kind", "endpoint", "status", "attempts", "last_error")
    list_filter = ("status", "kind", "event")
    search_fields = ("endpoint", "event")
    show_full_result_count = False


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(ReadOnlyAdmin):
    list_display = ("endpoint", "open_until", "probe_started_at")
