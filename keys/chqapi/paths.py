"""Which paths are the API's (no imports: logging's filters read it before Django's apps are ready)."""


def is_api_path(path: str) -> bool:
    """Whether `path` is the API's: /chqapi/... and also /chqapi and //chqapi/..., which
    are calls that missed a route (a JSON 404), not site pages."""
    rest = path.lstrip("/")
    return rest == "chqapi" or rest.startswith("chqapi/")
