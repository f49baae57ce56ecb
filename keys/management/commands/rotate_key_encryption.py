from django.core.management.base import BaseCommand, CommandError

from keys import services
from keys.sealing import SealError


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored API key value under the first key of KEYS_ENCRYPTION_KEYS. "
        "Put a new key first in the list, run this, then remove the old key from the list. "
        "Key values themselves do not change; integrators notice nothing."
    )

    def handle(self, *args, **options):
        try:
            report = services.key_encryption_rotate()
        except SealError as exc:
            raise CommandError(f"{exc} Nothing was changed.") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"{report.keys} API key{'s' if report.keys != 1 else ''}: "
                f"{report.resealed} value{'s' if report.resealed != 1 else ''} re-encrypted under the first key, "
                f"{report.current} already were."
            )
        )
