import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from keys import cli, warnings


def days(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3650:
        raise CommandError(f"--days {raw!r}: give a number of days above 0 (at most 3650), e.g. --days 30.")
    return value


class Command(BaseCommand):
    help = (
        "List the keys that expire, or whose logging ends, within KEYS_EXPIRY_WARNING_DAYS "
        "(the largest threshold), soonest first, with the warnings already sent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", help="look this many days ahead instead of the largest threshold")
        parser.add_argument(
            "--send",
            action="store_true",
            help="also send the warnings that are due now (what each task worker does on its schedule; for cron)",
        )
        cli.add_json(parser)

    def handle(self, *args, **options):
        horizon = days(options["days"]) if options["days"] is not None else warnings.horizon_days()
        sent = warnings.send_due() if options["send"] else None
        at = timezone.now()
        ends = warnings.due(at=at, days=horizon)
        if options["json"]:
            data = {"days": horizon, "due": [end.as_json(at) for end in ends]}
            if sent is not None:
                data["sent"] = sent
            self.stdout.write(json.dumps(data, indent=2))
            return
        if sent is not None:
            self.stdout.write(f"{sent} warning{'s' if sent != 1 else ''} sent.")
        if not horizon:
            self.stdout.write("Warnings are off (KEYS_EXPIRY_WARNING_DAYS is empty); --days N looks ahead anyway.")
            return
        if not ends:
            self.stdout.write(f"No key expires, and no key's logging ends, within {horizon:g} days.")
            return
        for end in ends:
            name = end.key.description or "(no description)"
            warned = ", ".join(f"{d} days" for d in end.warned)
            self.stdout.write(
                f"key {end.key.pk:<6} {name}: {end.what()}, {warnings.time_left(end.ends_at, at)}"
                + (f" (warned {warned} before)" if warned else "")
            )
