import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from keys import cli
from keys.access import decide

ALLOWED, REFUSED, COULD_NOT_CHECK = 0, 1, 2


class Command(BaseCommand):
    help = (
        "Ask the access decision whether a key may call an API type (now, or --at an instant) and whether the "
        "call would be logged. Exit status, as grep's: 0 allowed, 1 refused, 2 could not check (an unknown "
        "API type, a bad option, a database that cannot be reached)."
    )

    def add_arguments(self, parser):
        parser.add_argument("value", help=cli.VALUE_HELP)
        parser.add_argument("--type", required=True, metavar="API-TYPE", help="display name or import:/export:<id>")
        parser.add_argument("--at", metavar="DATETIME", help="instant to decide for, e.g. 2027-01-31T23:59 (site time)")
        cli.add_json(parser)

    def execute(self, *args, **options):
        # Anything that stops the check is "could not check", never "refused" (argparse's own errors exit 2 too).
        try:
            return super().execute(*args, **options)
        except CommandError as exc:
            raise CommandError(str(exc), returncode=COULD_NOT_CHECK) from exc
        except Exception as exc:
            raise CommandError(f"Could not check: {exc.__class__.__name__}: {exc}", returncode=COULD_NOT_CHECK) from exc

    def handle(self, *args, **options):
        api_type = cli.api_type_by_name(options["type"])
        at = cli.parse_instant(options["at"], "--at") if options["at"] else timezone.now()
        value = cli.read_value(options["value"])
        decision = decide(value, direction=api_type.direction, api_id=api_type.api_id, at=at)
        when = timezone.localtime(at).isoformat(timespec="minutes")
        data = {
            "allowed": decision.allowed,
            "logged": decision.logged,
            "reason": decision.reason.name.lower(),
            "message": decision.message,
            "api_type": {"name": api_type.name, "id": f"{api_type.direction}:{api_type.api_id}"},
            "at": timezone.localtime(at).isoformat(),
        }
        if options["json"]:
            self.stdout.write(cli.json.dumps(data, indent=2))
        elif decision.allowed:
            logged = "logged" if decision.logged else "not logged"
            self.stdout.write(self.style.SUCCESS(f"allowed: {api_type.name} at {when}, {logged}"))
        else:
            self.stdout.write(self.style.ERROR(f"refused: {decision.reason.value} ({decision.message})"))
        if not decision.allowed:
            sys.exit(REFUSED)
