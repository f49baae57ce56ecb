from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "integrations › keys"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the cache invalidation)
