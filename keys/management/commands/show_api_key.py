import json

from django.core.management.base import BaseCommand

from keys import cli


class Command(BaseCommand):
    help = (
        "Show one API key: its settings, limits and contact, API types with logged / logging until and "
        "their own rates, when it was last used, its calls in the last 30 days (--json: per API type and day) "
        "and what remains of its quotas."
    )

    def add_arguments(self, parser):
        parser.add_argument("value", help=cli.VALUE_HELP)
        cli.add_json(parser)

    def handle(self, *args, **options):
        data = cli.key_data(cli.key_by_value(options["value"]))
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2))
            return
        out = self.stdout.write
        out(f"value:           {data['value']}")
        out(f"description:     {data['description']}")
        out(f"is active:       {'yes' if data['is_active'] else 'no'}")
        out(f"expires:         {data['expires_at'] + ' (' + data['expiry'] + ')' if data['expires_at'] else 'never'}")
        for line in limit_lines(data):
            out(line)
        out(f"last used:       {data['last_used_at'] or 'never'}")
        usage = data["usage"]
        busiest = ", ".join(f"{t['name']} {t['calls']}" for t in usage["api_types"][:3])
        out(f"calls, 30 days:  {usage['calls']}" + (f" (busiest: {busiest})" if busiest else ""))
        for quota in data["quota_left"]:
            left = f"{quota['left']} of {quota['limit']} this {quota['period']}, starts again {quota['resets_at']}"
            out(f"quota left:      {left}")
        if data["old_value_works_until"]:
            out(f"rolled:          the old value works until {data['old_value_works_until']}")
        if data["allowed_for_all"]:
            logging = "no"
            if data["logged_for_all"]:
                logging = f"yes, until {data['logging_until']}" if data["logging_until"] else "yes, no end"
            out("API types:       allowed for all")
            out(f"logged for all:  {logging}")
            return
        if not data["api_types"]:
            out("API types:       none selected (every call is refused)")
            return
        out("API types:")
        for t in data["api_types"]:
            logged = "not logged"
            if t["logged"]:
                logged = f"logged until {t['logging_until']}" if t["logging_until"] else "logged, no end"
                logged += "" if t["logging_now"] else " (ended)"
            rates = _rates(t["rate_per_second"], t["rate_per_minute"])
            out(f"  {t['name']:<42} {t['id']:<36} {logged}" + (f", at most {rates}" if rates else ""))


def _rates(per_second: int | None, per_minute: int | None) -> str:
    parts = [
        f"{per_second} calls per second" if per_second else "",
        f"{per_minute} calls per minute" if per_minute else "",
    ]
    return " and ".join(p for p in parts if p)


def limit_lines(data: dict) -> list[str]:
    """The key's limits and contact, one line each (an empty limit said in words)."""
    rates = _rates(data["rate_per_second"], data["rate_per_minute"])
    quotas = " and ".join(
        f"{n} calls per {period}"
        for n, period in ((data["quota_per_day"], "day"), (data["quota_per_month"], "month"))
        if n
    )
    addresses = ", ".join(data["allowed_addresses"]) or "any (no client-address limit)"
    contact = " ".join(
        part for part in (data["contact_name"], f"<{data['contact_email']}>" if data["contact_email"] else "") if part
    )
    return [
        f"rate:            {'at most ' + rates if rates else 'no limit'}",
        f"quota:           {quotas or 'no limit'}",
        f"addresses:       {addresses}",
        f"contact:         {contact or 'none'}",
    ]
