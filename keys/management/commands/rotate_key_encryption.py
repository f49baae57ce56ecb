from django.core.management.base import BaseCommand, CommandError

from keys import cli, services
from keys.sealing import SealError


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored API key value under the first key of KEYS_ENCRYPTION_KEYS. "
        "Put a new key first in the list, run this, then remove the old key from the list. "
        "Key values themselves do not change; integrators notice nothing."
    )

    def add_arguments(self, parser):
        cli.add_json(parser)

    def handle(self, *args, **options):
        try:
            report = services.key_encryption_rotate()
        except SealError as exc:
            raise CommandError(f"{exc} Nothing was changed.") from None
        text = (
            f"{report.keys} API key{'s' if report.keys != 1 else ''}: "
            f"{report.resealed} value{'s' if report.resealed != 1 else ''} re-encrypted under the first key, "
            f"{report.current} already were."
        )
        data = {"keys": report.keys, "resealed": report.resealed, "already_current": report.current}
        cli.emit(self, options, data, text)
