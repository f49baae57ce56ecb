from django.core.management.base import BaseCommand, CommandError

from keys import cli
from keys.calllog import spool


class Command(BaseCommand):
    help = (
        "Store the logged API calls that the database refused when they were made (kept durably in "
        "KEYS_SPOOL_DIR). "
        "Safe to run at any time: a call is never stored twice."
    )

    def add_arguments(self, parser):
        cli.add_json(parser)

    def handle(self, *args, **options):
        stored, waiting = spool.replay()
        text = f"{stored} spooled call(s) stored; {waiting} still waiting."
        cli.emit(self, options, {"stored": stored, "waiting": waiting}, text)
        if waiting:
            raise CommandError(
                f"{waiting} spooled call(s) could not be stored yet (is the database reachable?). "
                f"They stay in {spool.directory()}; run this command again."
            )
