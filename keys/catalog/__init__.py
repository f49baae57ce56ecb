"""The API-type catalog: the types a host declares, from catalog files named in
the KEYS_CATALOGS setting and from `api_type()` calls in the host's code.

`manage.py sync_api_types` makes the API-type table match exactly this catalog
(keys.services.catalog_sync); nothing here touches the database, so settings
may import it (`KEYS_CATALOGS = [keys.catalog.CHQ]`).

A catalog file is JSON, as keys/catalog/api_types.json (CHQ's own 126 types):

    {"api_types": [
        {"direction": "export", "api_id": "widgets", "name": "Widgets Export",
         "group": "Stock", "swagger_group": "Widgets"}
    ]}

direction ("import" or "export"), api_id (the id in /chqapi/<direction>/<api_id>,
may contain "/") and name (as the key dialog shows it, unique) are required;
group (the dialog's grouping) and swagger_group (the OpenAPI tag) may be left
out. Other keys (such as "_source" or "derived_id") are ignored.

KEYS_CATALOGS names files either as a path (relative paths from BASE_DIR) or as
"package:resource", a file inside an installed package ("keys.catalog:api_types.json",
which is `CHQ`), so a catalog can ship inside the host's own wheel.

A type declared in code is registered from the host app's AppConfig.ready()
(or a module it imports), so it is known before any command or request runs:

    from keys import catalog
    catalog.api_type(name="Widgets Export", direction="export", api_id="widgets", group="Stock")

This module's `registry` is the one place code registrations are kept.
"""

import importlib.resources
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# CHQ's own 126 API types, the built-in catalog a host may choose (the demo project does).
CHQ = "keys.catalog:api_types.json"

DIRECTIONS = ("import", "export")
REQUIRED = ("direction", "api_id", "name")
OPTIONAL = ("group", "swagger_group")
# The ApiType columns' lengths (keys/models.py); swagger_group is not stored.
LIMITS = {"api_id": 100, "name": 150, "group": 60}

_PACKAGE_RESOURCE = re.compile(r"^(?P<package>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*):(?P<resource>[^:]+)$")


class CatalogError(ValueError):
    """A declared catalog that cannot be synced; the message names the file (or module) and entry."""


def _checked(entry: Any, where: str) -> dict[str, str]:
    """One entry as the sync needs it (the five fields, strings), or CatalogError saying what is wrong."""
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in REQUIRED):
        raise CatalogError(f"{where} needs string fields direction, api_id and name.")
    if entry["direction"] not in DIRECTIONS or not entry["api_id"] or not entry["name"]:
        raise CatalogError(f"{where} has an empty id or name, or a direction other than import/export.")
    for name in OPTIONAL:
        if not isinstance(entry.get(name, ""), str):
            raise CatalogError(f"{where}: {name} must be a string.")
    checked = {k: entry[k] for k in REQUIRED} | {k: entry.get(k, "") for k in OPTIONAL}
    for name, limit in LIMITS.items():
        if len(checked[name]) > limit:
            raise CatalogError(f"{where}: {name} is longer than {limit} characters.")
    return checked


def _unique(entries: Iterable[tuple[dict, str]]) -> list[dict]:
    """The entries, each id and name once; a repeat names both places."""
    ids: dict[tuple[str, str], str] = {}
    names: dict[str, str] = {}
    result = []
    for entry, where in entries:
        ident = (entry["direction"], entry["api_id"])
        first = ids.get(ident) or names.get(entry["name"])
        if first is not None:
            raise CatalogError(
                f"{where} repeats {ident[0]}:{ident[1]} or {entry['name']!r} (as {first[0].lower()}{first[1:]})."
            )
        ids[ident] = names[entry["name"]] = where
        result.append(entry)
    return result


# --- files ------------------------------------------------------------------------------


def resolve(source: str | os.PathLike) -> Path:
    """The file a KEYS_CATALOGS item names: "package:resource" inside an installed
    package, else a path (a relative one from BASE_DIR, or the working directory)."""
    text = os.fspath(source)
    match = _PACKAGE_RESOURCE.match(text)
    if match and not os.path.isabs(text):
        try:
            root = importlib.resources.files(match["package"])
        except (ModuleNotFoundError, TypeError):  # TypeError: a module that is not a package
            raise CatalogError(f"Catalog {text!r}: there is no package {match['package']!r}.") from None
        return Path(str(root.joinpath(match["resource"])))
    path = Path(text)
    if not path.is_absolute():
        from django.conf import settings

        path = Path(getattr(settings, "BASE_DIR", Path.cwd())) / path
    return path


def read_file(source: str | os.PathLike) -> list[dict]:
    """The checked entries of one catalog file; CatalogError naming the file and entry."""
    return _unique(_read(resolve(source)))


def _read(path: Path) -> list[tuple[dict, str]]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"Cannot read the catalog file {path}: {exc.strerror}.") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"The catalog file {path} is not valid JSON: {exc}.") from exc
    entries = data.get("api_types") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise CatalogError(f'The catalog file {path} needs an "api_types" list.')
    return [(_checked(entry, f"Entry {n} of {path}"), f"Entry {n} of {path}") for n, entry in enumerate(entries, 1)]


# --- code -------------------------------------------------------------------------------


class Registry:
    """API types declared in code, in the order they were declared; each remembers its module."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[dict, str]] = {}

    def register(self, module: str, **fields: Any) -> dict:
        where = f"api_type({fields.get('direction')}:{fields.get('api_id')}) in {module}"
        unknown = set(fields) - set(REQUIRED) - set(OPTIONAL)
        if unknown:
            raise TypeError(f"{where}: unexpected field(s) {', '.join(sorted(unknown))}.")
        entry = _checked(fields, where)
        ident = (entry["direction"], entry["api_id"])
        held = self._entries.get(ident)
        if held is not None and held[0] != entry:  # the same call twice (a module imported again) is no change
            raise CatalogError(f"{where} declares {ident[0]}:{ident[1]} again, differently (first in {held[1]}).")
        self._entries[ident] = (entry, where)
        return entry

    def entries(self) -> list[tuple[dict, str]]:
        return list(self._entries.values())

    def clear(self) -> None:
        self._entries.clear()


registry = Registry()


def api_type(*, name: str, direction: str, api_id: str, group: str = "", swagger_group: str = "") -> dict:
    """Declare one API type from code (call it from your AppConfig.ready()); the next
    `sync_api_types` adds it, and keeps it while it stays declared."""
    module = sys._getframe(1).f_globals.get("__name__", "?")
    return registry.register(
        module, name=name, direction=direction, api_id=api_id, group=group, swagger_group=swagger_group
    )


# --- the whole catalog --------------------------------------------------------------------


def sources() -> list[str]:
    """The KEYS_CATALOGS setting: catalog files, none by default."""
    from django.conf import settings

    declared = settings.KEYS_CATALOGS
    if isinstance(declared, (str, os.PathLike)):  # one name, not a list of its characters
        declared = [declared]
    return list(declared)


def declared(files: Iterable[str | os.PathLike] | None = None) -> list[dict]:
    """Every declared API type: the files (KEYS_CATALOGS unless given), then the code
    registrations. An id or name declared twice, in one place or across two, is a
    CatalogError naming both."""
    pairs: list[tuple[dict, str]] = []
    for source in sources() if files is None else files:
        pairs += _read(resolve(source))
    pairs += registry.entries()
    return _unique(pairs)
