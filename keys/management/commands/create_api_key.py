from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from keys import cli, services
from keys.audit import Actor


class Command(BaseCommand):
    help = (
        "Create an API key and print its value. API types are named by display name or as import:<id> / "
        "export:<id>, optionally followed by :logged and :YYYY-MM-DD (logging until), "
        'e.g. --type "Inventory Export:logged:2027-01-31" --type import:customer. Limits are optional: '
        '--rate-per-second 20 --quota-per-day 50000 --allow-address 198.51.100.0/24 --type-rate "Inventory Export:5/s".'
    )

    def add_arguments(self, parser):
        parser.add_argument("--actor", help="who to record in the key's history (default: the operating-system user)")
        parser.add_argument("--description", required=True, help="what the key is for")
        parser.add_argument("--inactive", action="store_true", help="create the key inactive (default: active)")
        parser.add_argument(
            "--expires",
            metavar="DATETIME",
            help="refuse every call from this moment (site time), e.g. 2027-01-31T17:30",
        )
        parser.add_argument("--all", action="store_true", help="allowed for all API types")
        parser.add_argument("--logged", action="store_true", help="with --all: logged for all")
        parser.add_argument("--logging-until", metavar="DATE", help="with --all --logged: last day of logging")
        parser.add_argument(
            "--type", action="append", default=[], metavar="API-TYPE[:logged[:DATE]]", help="a selected API type"
        )
        cli.add_limit_arguments(parser, clearing=False)
        cli.add_quiet(parser)  # print only the value (for scripts)
        cli.add_json(parser)

    def handle(self, *args, **options):
        if options["logged"] and not options["all"]:
            raise CommandError("--logged needs --all (logged for all needs allowed for all).")
        if options["logging_until"] and not options["logged"]:
            raise CommandError("--logging-until needs --all --logged.")
        until = cli.parse_date(options["logging_until"], "--logging-until") if options["logging_until"] else None
        grants = cli.with_type_rates([cli.grant_spec(raw) for raw in options["type"]], options["type_rate"])
        limits = cli.limit_values(options)
        limits["allowed_addresses"] = cli.addresses(options["allow_address"], "--allow-address")
        try:
            key = services.api_key_create(
                actor=Actor.for_command(options["actor"]),
                description=options["description"],
                is_active=not options["inactive"],
                expires_at=cli.parse_instant(options["expires"], "--expires") if options["expires"] else None,
                allowed_for_all=options["all"],
                logged_for_all=options["logged"],
                logging_until=until,
                grants=grants,
                **limits,
            )
        except ValidationError as exc:
            raise CommandError(cli.validation_problem(exc)) from exc
        cli.emit(
            self,
            options,
            cli.key_data(key),
            f"Created API key {key.value} ({key.description}).",
            quiet=str(key.value),
        )
