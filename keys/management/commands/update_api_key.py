from dataclasses import replace

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from keys import cli, services
from keys.audit import Actor


class Command(BaseCommand):
    help = (
        "Change an API key. Only what you name changes. API types are named as in create_api_key; "
        '--add-type replaces the settings of a type already selected, e.g. --add-type "Inventory Export:logged". '
        "Limits: a number, or none to remove it (--rate-per-second none); --no-limits removes them all."
    )

    def add_arguments(self, parser):
        parser.add_argument("--actor", help="who to record in the key's history (default: the operating-system user)")
        parser.add_argument("value", help=cli.VALUE_HELP)
        cli.add_json(parser)
        parser.add_argument("--description")
        active = parser.add_mutually_exclusive_group()
        active.add_argument("--activate", action="store_true")
        active.add_argument("--deactivate", action="store_true")
        for_all = parser.add_mutually_exclusive_group()
        for_all.add_argument("--all", action="store_true", help="allowed for all API types")
        for_all.add_argument("--no-all", action="store_true", help="only the selected API types")
        logged = parser.add_mutually_exclusive_group()
        logged.add_argument("--logged", action="store_true", help="logged for all (needs allowed for all)")
        logged.add_argument("--not-logged", action="store_true", help="not logged for all")
        parser.add_argument("--logging-until", metavar="DATE|never", help="last day of logging for all, or never")
        parser.add_argument("--expires", metavar="DATETIME|never", help="refuse every call from this moment, or never")
        parser.add_argument("--add-type", action="append", default=[], metavar="API-TYPE[:logged[:DATE]]")
        parser.add_argument("--remove-type", action="append", default=[], metavar="API-TYPE")
        cli.add_limit_arguments(parser, clearing=True)

    def handle(self, *args, **options):
        key = cli.key_by_value(options["value"])
        fields = {}
        if options["description"] is not None:
            fields["description"] = options["description"]
        if options["activate"] or options["deactivate"]:
            fields["is_active"] = options["activate"]
        if options["all"] or options["no_all"]:
            fields["allowed_for_all"] = options["all"]
            if options["no_all"]:
                fields |= {"logged_for_all": False, "logging_until": None}
        if options["logged"] or options["not_logged"]:
            fields["logged_for_all"] = options["logged"]
            if options["not_logged"]:
                fields["logging_until"] = None
        if options["logging_until"]:
            raw = options["logging_until"]
            fields["logging_until"] = None if raw == "never" else cli.parse_date(raw, "--logging-until")
        if options["expires"]:
            raw = options["expires"]
            fields["expires_at"] = None if raw == "never" else cli.parse_instant(raw, "--expires")
        fields |= self._limits(key, options)
        add = [cli.grant_spec(raw) for raw in options["add_type"]]
        remove = [cli.api_type_by_name(raw).pk for raw in options["remove_type"]]
        if options["no_limits"] or options["type_rate"]:
            add = self._type_rates(key, options, add, remove)
        if not (fields or add or remove):
            raise CommandError("Nothing to change: name at least one option (see --help).")
        try:
            services.api_key_change(
                key=key, actor=Actor.for_command(options["actor"]), add_grants=add, remove_type_ids=remove, **fields
            )
        except ValidationError as exc:
            raise CommandError(cli.validation_problem(exc) + " Nothing was changed.") from exc
        key.refresh_from_db()
        cli.emit(self, options, cli.key_data(key), f"Updated API key {key.value}.")

    def _limits(self, key, options) -> dict:
        """The key's limits the options change: --no-limits first, then each option named."""
        fields = dict(services.NO_LIMITS) if options["no_limits"] else {}
        fields |= cli.limit_values(options, clearing=True)
        named = options["allow_address"] or options["disallow_address"] or options["any_address"]
        if named:
            kept = [] if options["no_limits"] or options["any_address"] else list(key.allowed_addresses)
            added = cli.addresses(options["allow_address"], "--allow-address")
            removed = cli.addresses(options["disallow_address"], "--disallow-address")
            if unknown := [a for a in removed if a not in kept + added]:
                now = ", ".join(key.allowed_addresses) or "none: any address may call"
                raise CommandError(
                    f"--disallow-address: {', '.join(unknown)} is not among the key's client addresses ({now})."
                )
            fields["allowed_addresses"] = [a for a in dict.fromkeys(kept + added) if a not in removed]
        return fields

    def _type_rates(self, key, options, add, remove) -> list:
        """`add` with the API types' own rates changed: every one removed by --no-limits, then --type-rate."""
        added = {g.api_type_id for g in add}
        grants = add + [g for g in services.current_grants(key) if g.api_type_id not in added | set(remove)]
        if options["no_limits"]:
            grants = [replace(g, rate_per_second=None, rate_per_minute=None) for g in grants]
        return cli.with_type_rates(grants, options["type_rate"], clearing=True)
