from django.apps import AppConfig


class RiskrouterConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "riskrouter"
    verbose_name = "Risk router"
