from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from keys import catalog, cli
from keys.services import SyncReport, catalog_sync


class Command(BaseCommand):
    help = (
        "Make the API-type table match the declared catalog (the files KEYS_CATALOGS names and the types "
        "registered in code with keys.catalog.api_type): add new types, update names and groups. A type no "
        "catalog declares is kept; --prune removes those no key uses, after confirmation."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--file",
            type=Path,
            action="append",
            help="a catalog file to sync instead of those KEYS_CATALOGS names (repeat for several); "
            "types registered in code are still part of the catalog",
        )
        parser.add_argument(
            "--prune", action="store_true", help="remove the API types no catalog declares, unless a key uses them"
        )
        parser.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
        cli.add_no_input(parser)
        cli.add_json(parser)

    def handle(self, *args, **options):
        files = options["file"]
        if isinstance(files, (str, Path)):  # call_command(file=path) passes one path, not a list
            files = [files]
        prune, dry_run = options["prune"], options["dry_run"]
        try:
            entries = catalog.declared(files)
            report = catalog_sync(entries, prune=prune, dry_run=True)
            if prune and report.removed and not dry_run:
                if options["interactive"]:  # what the question is about; JSON's reader wants only the JSON
                    out = self.stderr if options["json"] else self.stdout
                    for name in report.removed:
                        out.write(f"to be removed (no catalog declares it, no key uses it): {name}")
                question = f"Remove these {len(report.removed)} API type(s)?"
                if not cli.confirm(self, options, question):
                    cli.emit(self, options, self._data(report, applied=False, **options), "Nothing changed.")
                    return
            if not dry_run:
                report = catalog_sync(entries, prune=prune, confirmed=report.removed if prune else None)
        except catalog.CatalogError as exc:
            raise CommandError(f"{exc} Fix the catalog and run the command again; nothing was changed.") from exc
        except IntegrityError as exc:
            raise CommandError(
                f"The catalog clashes with an API type that is kept ({exc}); nothing was changed. "
                "Rename the entry in the catalog, or the type in Django admin › API types."
            ) from exc
        if options["json"]:
            cli.emit(self, options, self._data(report, applied=not dry_run, **options), "")
            return
        if not entries:
            self.stdout.write(
                self.style.WARNING(
                    "No API types are declared: name catalog files in KEYS_CATALOGS (keys.catalog.CHQ is CHQ's "
                    "own) or register types with keys.catalog.api_type() (README: API-type catalog)."
                )
            )
        self._print(report, dry_run=dry_run, prune=prune)

    @staticmethod
    def _data(report: SyncReport, *, applied: bool, dry_run: bool, prune: bool, **_) -> dict:
        return {
            "dry_run": dry_run,
            "prune": prune,
            "applied": applied,
            "added": report.added,
            "updated": report.updated,
            "removed": report.removed,
            "kept_in_use": report.kept_in_use,
            "undeclared": report.undeclared,
            "unchanged": report.unchanged,
        }

    def _print(self, report: SyncReport, *, dry_run: bool, prune: bool) -> None:
        suffix = " (dry run)" if dry_run else ""
        for label, names in (("added", report.added), ("updated", report.updated), ("removed", report.removed)):
            for name in names:
                self.stdout.write(f"{label}{suffix}: {name}")
        for name in report.kept_in_use:
            self.stdout.write(self.style.WARNING(f"kept (a key uses it, no catalog declares it): {name}"))
        for name in report.undeclared:
            self.stdout.write(f"kept (no catalog declares it): {name}")
        if report.undeclared:
            self.stdout.write("  --prune removes the types no catalog declares, unless a key uses them.")
        summary = (
            f"{len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
            f"{report.unchanged} unchanged"
            + (f", {len(report.undeclared)} undeclared kept" if report.undeclared else "")
        )
        if dry_run:
            self.stdout.write(f"Dry run, nothing written: {summary}.")
        elif report.changed:
            self.stdout.write(self.style.SUCCESS(f"API-type catalog in sync: {summary}."))
        else:
            self.stdout.write(self.style.SUCCESS(f"API-type catalog already in sync, nothing changed: {summary}."))
