import sys

from django.core.management.base import BaseCommand
from django.utils import timezone

from keys import cli
from keys.access import decide


class Command(BaseCommand):
    help = (
        "Ask the access decision whether a key may call an API type (now, or --at an instant) and whether the "
        "call would be logged. Exit status 0 when allowed, 1 when refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("value", help="the key's value (GUID)")
        parser.add_argument("--type", required=True, metavar="API-TYPE", help="display name or import:/export:<id>")
        parser.add_argument("--at", metavar="DATETIME", help="instant to decide for, e.g. 2027-01-31T23:59 (site time)")

    def handle(self, *args, **options):
        api_type = cli.api_type_by_name(options["type"])
        at = cli.parse_instant(options["at"], "--at") if options["at"] else timezone.now()
        decision = decide(options["value"], direction=api_type.direction, api_id=api_type.api_id, at=at)
        when = timezone.localtime(at).isoformat(timespec="minutes")
        if decision.allowed:
            logged = "logged" if decision.logged else "not logged"
            self.stdout.write(self.style.SUCCESS(f"allowed: {api_type.name} at {when}, {logged}"))
            return
        self.stdout.write(self.style.ERROR(f"refused: {decision.reason.value} ({decision.message})"))
        sys.exit(1)
