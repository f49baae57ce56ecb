import json

from django.core.management.base import BaseCommand

from keys import cli
from keys.models import ApiKey


class Command(BaseCommand):
    help = "List API keys, newest first."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--active", action="store_true", help="only active keys")
        which.add_argument("--inactive", action="store_true", help="only inactive keys")
        cli.add_json(parser)

    def handle(self, *args, **options):
        keys = ApiKey.objects.order_by("-created_at", "-pk")
        if options["active"]:
            keys = keys.filter(is_active=True)
        if options["inactive"]:
            keys = keys.filter(is_active=False)
        rows = [
            {
                "value": str(k.value),
                "description": k.description,
                "is_active": k.is_active,
                "allowed_for_all": k.allowed_for_all,
                "created_at": k.created_at.isoformat(),
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
            }
            for k in keys.iterator()
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("No API keys. Create one with: manage.py create_api_key --description TEXT")
            return
        for row in rows:
            flags = ("active" if row["is_active"] else "inactive") + (
                ", all API types" if row["allowed_for_all"] else ""
            )
            self.stdout.write(f"{row['value']}  {flags:<24}  {row['description']}")
