import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from keys import cli, services
from keys.audit import Actor

PERIOD = re.compile(r"^(?P<n>\d{1,4})(?P<unit>[mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class Command(BaseCommand):
    help = (
        "Give an API key a new value and print it. The old value keeps working for --grace "
        "(now, 30m, 1h, 24h, 7d, or a date and time such as 2027-01-31T17:30), then only the new one does. "
        "--end-grace stops the old value of a rolled key now."
    )

    def add_arguments(self, parser):
        parser.add_argument("--actor", help="who to record in the key's history (default: the operating-system user)")
        parser.add_argument("value", help=cli.VALUE_HELP + "; the old value of a rolled key names it too")
        parser.add_argument("--grace", default="24h", help="how long the old value keeps working (default 24h)")
        parser.add_argument("--end-grace", action="store_true", help="stop the old value now instead of rolling")
        cli.add_quiet(parser)  # print only the new value (for scripts)
        cli.add_json(parser)

    def handle(self, *args, **options):
        key = cli.key_by_value(options["value"])
        actor = Actor.for_command(options["actor"])
        if options["end_grace"]:
            services.api_key_end_grace(key=key, actor=actor)
            text = f"The old value of API key …{key.value.hex[-4:]} no longer works."
            cli.emit(self, options, {"value": str(key.value), "old_value_works_until": None}, text)
            return
        key = services.api_key_roll(key=key, grace_until=self.grace_until(options["grace"]), actor=actor)
        until = timezone.localtime(key.previous_until).strftime("%Y-%m-%d %H:%M %Z")
        data = {"value": str(key.value), "old_value_works_until": key.previous_until.isoformat()}
        text = f"Rolled. New value: {key.value}. The old value works until {until}."
        cli.emit(self, options, data, text, quiet=str(key.value))

    @staticmethod
    def grace_until(raw: str):
        if raw == "now":
            return timezone.now()
        if match := PERIOD.match(raw):
            return timezone.now() + timedelta(**{UNITS[match["unit"]]: int(match["n"])})
        try:
            return cli.parse_instant(raw, "--grace")
        except CommandError:
            raise CommandError(
                f"--grace: {raw!r} is not now, a period (30m, 1h, 24h, 7d) or a date and time (2027-01-31T17:30)."
            ) from None
