"""Key values at rest: a digest to find a key by, and the value only encrypted.

A stolen database dump (or backup, or read-only SQL access) must not let
anyone call the API. So no key value is stored in the clear:

- `digest(value)`: HMAC-SHA256 of the value under KEYS_LOOKUP_SECRET. The
  guard looks a presented value up by its digest: one indexed equality, as
  before. Without the secret a digest can be neither reversed nor computed
  for a guessed value.
- `seal(value)` / `unseal(token)`: the value encrypted with Fernet (AES-128-CBC
  with HMAC-SHA256, from `cryptography`) under KEYS_ENCRYPTION_KEYS, so the
  pane, admin and commands can still show it to those with the rights, as CHQ
  does. The first configured key encrypts; every configured key decrypts, so
  an operator adds a new key in front, runs `rotate_key_encryption`, and then
  drops the old one.

Both secrets are settings (keys/conf.py): in development they are derived from
SECRET_KEY, and `check --deploy` names one production has not set. The demo
project reads them from the environment and refuses to start without them.
"""

import hashlib
import hmac
import uuid
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DIGEST_LENGTH = 64  # hex characters of a SHA-256


class SealError(Exception):
    """A stored value no configured encryption key opens."""


@cache
def _lookup_secret() -> bytes:
    return settings.KEYS_LOOKUP_SECRET.encode()


@cache
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k) for k in settings.KEYS_ENCRYPTION_KEYS])


@receiver(setting_changed)
def _forget_secrets(*, setting: str, **kwargs) -> None:
    # Tests switch secrets with override_settings; production reads them once.
    if setting in {"KEYS_LOOKUP_SECRET", "KEYS_ENCRYPTION_KEYS"}:
        _lookup_secret.cache_clear()
        _fernet.cache_clear()


def digest(value: uuid.UUID) -> str:
    """The lookup digest of a key value (the 16 bytes of the GUID, so every spelling agrees)."""
    return hmac.new(_lookup_secret(), value.bytes, hashlib.sha256).hexdigest()


def seal(value: uuid.UUID) -> str:
    return _fernet().encrypt(value.bytes).decode("ascii")


def unseal(token: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=_fernet().decrypt(token.encode("ascii")))
    except (InvalidToken, ValueError):
        raise SealError(
            "A stored API key value cannot be decrypted with the configured KEYS_ENCRYPTION_KEYS; "
            "the key it was encrypted with is missing from the list."
        ) from None


def reseal(token: str) -> str:
    """The same value encrypted under the first configured key (for rotate_key_encryption)."""
    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise SealError(
            "A stored API key value cannot be decrypted with the configured KEYS_ENCRYPTION_KEYS."
        ) from None


def is_current(token: str) -> bool:
    """Whether the first configured key opens `token` (rotation has nothing to do for it)."""
    try:
        Fernet(settings.KEYS_ENCRYPTION_KEYS[0]).decrypt(token.encode("ascii"))
    except InvalidToken:
        return False
    return True


def new_encryption_key() -> str:
    """A fresh key for KEYS_ENCRYPTION_KEYS (make run writes one into .env)."""
    return Fernet.generate_key().decode("ascii")
