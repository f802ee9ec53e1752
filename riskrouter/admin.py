from django.contrib import admin

from . import registry
from .models import PolicyRule, RiskModelVersion


@admin.register(PolicyRule)
class PolicyRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "match", "op", "value", "tier", "four_eyes", "unless", "enabled", "updated_at")
    list_filter = ("kind", "tier", "enabled")
    search_fields = ("name", "match", "reason")
    list_editable = ("enabled",)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        registry.invalidate()  # this process at once; the others within RISKROUTER_REFRESH_SECONDS

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        registry.invalidate()


@admin.register(RiskModelVersion)
class RiskModelVersionAdmin(admin.ModelAdmin):
    """Read-only: versions change only through train_risk_model / promote_risk_model and the gate."""

    list_display = ("version", "state", "gate_passed", "rows", "high_recall", "automation", "created_at", "promoted_at")
    list_filter = ("state", "gate_passed")
    exclude = ("artifact",)
    readonly_fields = (
        "version",
        "state",
        "gate_passed",
        "gate_failures",
        "metrics",
        "training",
        "created_at",
        "promoted_at",
        "retired_at",
        "note",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).defer("artifact")

    @admin.display(description="rows")
    def rows(self, obj: RiskModelVersion):
        return obj.training.get("rows")

    @admin.display(description="high recall (CV)")
    def high_recall(self, obj: RiskModelVersion):
        return obj.metrics.get("cv", {}).get("high_recall_blocking")

    @admin.display(description="automation (CV)")
    def automation(self, obj: RiskModelVersion):
        return obj.metrics.get("cv", {}).get("automation_rate")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
