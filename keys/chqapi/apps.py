from django.apps import AppConfig


class ChqApiConfig(AppConfig):
    """CHQ's API wire format on top of the keys app: /chqapi/'s routes, its handlers, API
    documents and the Swagger page. A host that guards only its own views leaves it out."""

    name = "keys.chqapi"
    label = "chqapi"
    verbose_name = "CHQ API"

    def ready(self) -> None:
        from . import checks, handlers  # noqa: F401  (the request path's checks; the built-in handlers)
