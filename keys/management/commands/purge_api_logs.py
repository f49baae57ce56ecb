import json

from django.core.management.base import BaseCommand, CommandError

from keys import cli
from keys.retention import BATCH, documents_purge, finished_before
from keys.selectors import start_of_day


class Command(BaseCommand):
    help = (
        f"Delete stored API calls from before a day (site time zone), in batches (default {BATCH:,}) through "
        "the creation time's index, so that the table is never locked for long. Each batch is its own "
        "transaction; an interrupted purge (Ctrl-C) keeps what it deleted and can be run again. Asynchronous "
        "documents still queued or running are kept. Says how many it will delete and asks on a terminal; "
        "without one, add --no-input."
    )

    def add_arguments(self, parser):
        parser.add_argument("--before", required=True, metavar="DATE", help="delete calls from before this day")
        parser.add_argument("--key", metavar="VALUE", help="only this key's calls (- reads it from standard input)")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BATCH,
            metavar="N",
            help=f"documents per transaction (default {BATCH:,}); smaller holds the write lock for less",
        )
        cli.add_no_input(parser)
        cli.add_json(parser)

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError(f"--batch-size: {options['batch_size']} is not a number of documents; give 1 or more.")
        before = start_of_day(cli.parse_date(options["before"], "--before"))
        key_id = cli.key_by_value(options["key"]).pk if options["key"] else None
        # Counted once, for the question (an index range scan); the deletes themselves count nothing.
        total = finished_before(before, key_id=key_id).count()
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
        watched = self.stdout.isatty() and not options["json"]  # a progress bar only where a person watches
        deleted = 0

        def progress(n: int) -> None:
            nonlocal deleted
            deleted = n
            if watched:
                done = min(n * 30 // max(total, 1), 30)
                self.stdout.write(f"\r[{'#' * done}{'.' * (30 - done)}] {n}/{total}", ending="")

        try:
            documents_purge(before=before, key_id=key_id, batch=options["batch_size"], progress=progress)
        except KeyboardInterrupt:
            raise CommandError(
                f"Interrupted: {deleted} stored call(s){whose} deleted, the batch under way rolled back. "
                "Run the same command again to delete the rest."
            ) from None
        if watched:
            self.stdout.write("")
        text = f"Deleted {deleted} stored call(s){whose} from before {options['before']}."
        cli.emit(self, options, {"dry_run": False, "before": options["before"], "deleted": deleted}, text)
