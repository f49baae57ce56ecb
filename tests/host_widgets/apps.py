from django.apps import AppConfig


class WidgetsConfig(AppConfig):
    name = "widgets"

    def ready(self) -> None:
        from keys.catalog import api_type

        # Declared in code, beside the catalog file KEYS_CATALOGS names.
        api_type(name="Gadgets Export", direction="export", api_id="gadgets", swagger_group="Widgets")
