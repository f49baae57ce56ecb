import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from keys import cli
from keys.services import CATALOG_FILE, catalog_entries, catalog_sync


class Command(BaseCommand):
    help = (
        "Re-sync the API-type catalog from its data file: add new types, update names and groups, "
        "remove types the file no longer lists unless a key uses them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--file", type=Path, default=CATALOG_FILE, help=f"catalog file (default: {CATALOG_FILE})")
        parser.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
        cli.add_json(parser)

    def handle(self, *args, **options):
        try:
            entries = catalog_entries(options["file"])
            report = catalog_sync(entries, dry_run=options["dry_run"])
        except ValueError as exc:
            raise CommandError(f"{exc} Fix the file and run the command again.") from exc
        except IntegrityError as exc:
            raise CommandError(
                f"The catalog clashes with an API type that is kept because a key uses it ({exc}). "
                "Rename the entry in the file, or remove the type from the keys that use it first."
            ) from exc
        if options["json"]:
            data = {
                "dry_run": options["dry_run"],
                "added": report.added,
                "updated": report.updated,
                "removed": report.removed,
                "kept_in_use": report.kept_in_use,
                "unchanged": report.unchanged,
            }
            self.stdout.write(json.dumps(data, indent=2))
            return
        verb = "would be" if options["dry_run"] else ""
        for label, names in (("added", report.added), ("updated", report.updated), ("removed", report.removed)):
            for name in names:
                self.stdout.write(f"{label}{' (dry run)' if verb else ''}: {name}")
        for name in report.kept_in_use:
            self.stdout.write(self.style.WARNING(f"kept (a key uses it, the file no longer lists it): {name}"))
        summary = (
            f"{len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
            f"{report.unchanged} unchanged"
        )
        if options["dry_run"]:
            self.stdout.write(f"Dry run, nothing written: {summary}.")
        else:
            self.stdout.write(self.style.SUCCESS(f"API-type catalog in sync: {summary}."))
