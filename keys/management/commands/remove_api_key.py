from django.core.management.base import BaseCommand

from keys import cli, services
from keys.audit import Actor


class Command(BaseCommand):
    help = (
        "Remove an API key. Its stored calls stay. Asks for confirmation on a terminal; without one "
        "(a script, or the value read from standard input with -) add --no-input."
    )

    def add_arguments(self, parser):
        parser.add_argument("--actor", help="who to record in the key's history (default: the operating-system user)")
        parser.add_argument("value", help=cli.VALUE_HELP)
        cli.add_no_input(parser)
        cli.add_json(parser)

    def handle(self, *args, **options):
        key = cli.key_by_value(options["value"])
        question = f"Remove API key {key.value} ({key.description or 'no description'})?"
        if not cli.confirm(self, options, question):
            self.stdout.write("Not removed.")
            return
        services.api_key_remove(key=key, actor=Actor.for_command(options["actor"]))
        cli.emit(self, options, {"removed": str(key.value)}, f"Removed API key {key.value}.")
