from django.core.management.base import BaseCommand, CommandError

from keys.chqapi import spool


class Command(BaseCommand):
    help = (
        "Store the logged API calls that the database refused when they were made (kept durably in "
        "KEYS_SPOOL_DIR). "
        "Safe to run at any time: a call is never stored twice."
    )

    def handle(self, *args, **options):
        stored, waiting = spool.replay()
        self.stdout.write(self.style.SUCCESS(f"{stored} spooled call(s) stored; {waiting} still waiting."))
        if waiting:
            raise CommandError(
                f"{waiting} spooled call(s) could not be stored yet (is the database reachable?). "
                f"They stay in {spool.directory()}; run this command again."
            )
