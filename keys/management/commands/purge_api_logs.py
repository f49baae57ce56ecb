import json

from django.core.management.base import BaseCommand
from django.db import transaction

from keys import cli
from keys.models import ApiDocument
from keys.selectors import start_of_day

BATCH = 1000


class Command(BaseCommand):
    help = (
        "Delete stored API calls from before a day (site time zone), in batches of 1,000 so that the table "
        "is never locked for long. Each batch is its own transaction; an interrupted purge can be run again. "
        "Asynchronous documents still queued or running are kept. Says how many it will delete and asks on a "
        "terminal; without one, add --no-input."
    )

    def add_arguments(self, parser):
        parser.add_argument("--before", required=True, metavar="DATE", help="delete calls from before this day")
        parser.add_argument("--key", metavar="VALUE", help="only this key's calls (- reads it from standard input)")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        cli.add_no_input(parser)
        cli.add_json(parser)

    def handle(self, *args, **options):
        before = start_of_day(cli.parse_date(options["before"], "--before"))
        # A document still queued or running is kept: its caller will ask for its result.
        finished = [ApiDocument.Status.SUCCESSFUL, ApiDocument.Status.ERROR]
        logs = ApiDocument.objects.filter(created_at__lt=before, status__in=finished)
        if options["key"]:
            logs = logs.filter(key=cli.key_by_value(options["key"]))
        total = logs.count()
        whose = " of that key" if options["key"] else ""
        if options["dry_run"]:
            if options["json"]:
                self.stdout.write(json.dumps({"dry_run": True, "before": options["before"], "would_delete": total}))
            else:
                self.stdout.write(
                    f"Dry run: {total} stored call(s){whose} from before {options['before']} would be deleted."
                )
            return
        question = f"Delete {total} stored call(s){whose} from before {options['before']}? This cannot be undone."
        if total and not cli.confirm(self, options, question):
            self.stdout.write("Nothing deleted.")
            return
        progress = self.stdout.isatty() and not options["json"]  # a progress bar only where a person watches
        deleted = 0
        while True:
            with transaction.atomic():
                ids = list(logs.order_by("id").values_list("id", flat=True)[:BATCH])
                if not ids:
                    break
                deleted += ApiDocument.objects.filter(id__in=ids).delete()[0]
            if progress:
                done = deleted * 30 // max(total, 1)
                self.stdout.write(f"\r[{'#' * done}{'.' * (30 - done)}] {deleted}/{total}", ending="")
        if progress:
            self.stdout.write("")
        text = f"Deleted {deleted} stored call(s){whose} from before {options['before']}."
        cli.emit(self, options, {"dry_run": False, "before": options["before"], "deleted": deleted}, text)
