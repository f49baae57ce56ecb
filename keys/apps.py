from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "integrations › keys"

    def ready(self) -> None:
        from importlib import import_module

        from django.conf import settings

        from . import checks, conf, signals  # noqa: F401  (system checks; settings' defaults; cache invalidation)

        # A host's own API handlers register themselves when their module is imported.
        for module in settings.KEYS_HANDLER_MODULES:
            import_module(module)
