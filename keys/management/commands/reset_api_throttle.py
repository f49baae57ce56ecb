from django.core.management.base import BaseCommand

from keys import shared


class Command(BaseCommand):
    help = (
        "Forget every refused-key count and lift every block (429) at once, in every worker process: "
        "for an operator after a false alarm, such as an integrator's program sending an old key."
    )

    def handle(self, *args, **options):
        shared.clear()
        self.stdout.write(self.style.SUCCESS("Refused-key counts and blocks cleared."))
