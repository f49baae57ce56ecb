import sys

from django.core.management.base import BaseCommand, CommandError

from keys import cli, services
from keys.audit import Actor


class Command(BaseCommand):
    help = "Remove an API key. Its stored calls stay. Asks for confirmation on a terminal unless --yes is given."

    def add_arguments(self, parser):
        parser.add_argument("--actor", help="who to record in the key's history (default: the operating-system user)")
        parser.add_argument("value", help="the key's value (GUID)")
        parser.add_argument("--yes", action="store_true", help="do not ask")

    def handle(self, *args, **options):
        key = cli.key_by_value(options["value"])
        if not options["yes"]:
            if not sys.stdin.isatty():
                raise CommandError("Not removing without confirmation: add --yes when no terminal can answer.")
            answer = input(f"Remove API key {key.value} ({key.description or 'no description'})? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                self.stdout.write("Not removed.")
                return
        services.api_key_remove(key=key, actor=Actor.for_command(options["actor"]))
        self.stdout.write(self.style.SUCCESS(f"Removed API key {key.value}."))
