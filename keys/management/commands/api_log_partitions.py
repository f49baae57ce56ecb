from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from keys import cli, partitions


class Command(BaseCommand):
    help = (
        "PostgreSQL: list the API documents' daily partitions, and make those missing (UTC days) from "
        f"--since (default today) through --ahead days after today (default {partitions.AHEAD_DAYS}). The task "
        "workers make them a week ahead every hour; make them for past days before loading old documents, or "
        "those go to the default partition. SQLite keeps the documents in one table."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", metavar="DATE", help="make the partitions from this day on (UTC)")
        parser.add_argument(
            "--ahead",
            type=int,
            default=partitions.AHEAD_DAYS,
            metavar="DAYS",
            help=f"make them through this many days after today (default {partitions.AHEAD_DAYS})",
        )
        cli.add_json(parser)

    def handle(self, *args, **options):
        if not partitions.partitioned():
            raise CommandError("The API documents are in one table on this database (SQLite): there are no partitions.")
        if options["ahead"] < 0:
            raise CommandError(f"--ahead: {options['ahead']} is not a number of days; give 0 or more.")
        since = cli.parse_date(options["since"], "--since") if options["since"] else None
        try:
            made = partitions.ensure(since=since, ahead=options["ahead"])
        except DatabaseError as exc:
            raise CommandError(f"A partition could not be made: {exc}") from None
        found = partitions.partitions()
        rows = [
            {
                "name": p.name,
                "from": None if p.start is None else p.start.isoformat(),
                "to": None if p.end is None else p.end.isoformat(),
                "default": p.is_default,
            }
            for p in found
        ]
        lines = [f"Made {len(made)} partition(s)." if made else "No partition was missing."]
        for p in found:
            if p.is_default:
                lines.append(f"  {p.name}: documents of any day without a partition")
            else:
                start = "the beginning" if p.start is None else f"{p.start:%Y-%m-%d %H:%M}"
                lines.append(f"  {p.name}: {start} to {p.end:%Y-%m-%d %H:%M} UTC")
        cli.emit(self, options, {"made": made, "partitions": rows}, "\n".join(lines))
