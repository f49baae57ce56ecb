from django.core.management.base import BaseCommand

from keys import cli, shared


class Command(BaseCommand):
    help = (
        "Forget every refused-key count and lift every block (429) at once, in every worker process: "
        "for an operator after a false alarm, such as an integrator's program sending an old key. "
        "Keys' rate counts go too (a key over its rate may call again at once); quota counts are "
        "seeded again from the usage stored."
    )

    def add_arguments(self, parser):
        cli.add_json(parser)

    def handle(self, *args, **options):
        shared.clear()
        cli.emit(self, options, {"cleared": True}, "Refused-key counts and blocks cleared.")
