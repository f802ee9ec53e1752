from django.apps import AppConfig


class ReviewqueueConfig(AppConfig):
    name = "reviewqueue"
    verbose_name = "Review queue"

    def ready(self):
        from reviewqueue import checks  # noqa: F401  (registers the deployment checks)
