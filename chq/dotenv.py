"""Write or complete the development `.env`, or print fresh secrets for production.

    python -m chq.dotenv            # make run: create .env, or add the secrets it lacks
    python -m chq.dotenv --print    # print a fresh set of secrets (for a production environment)

Runs before the virtual environment has Django, so it uses the standard library only.
A `.env` written by an older version gains the newer secrets without losing its
SECRET_KEY, so existing sessions and stored key values stay valid.
"""

import base64
import os
import secrets
import sys
from pathlib import Path

PATH = Path(__file__).resolve().parent.parent / ".env"


def fresh_secrets() -> dict[str, str]:
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "KEYS_LOOKUP_SECRET": secrets.token_urlsafe(50),
        # A Fernet key: 32 random bytes, URL-safe base64 (cryptography's Fernet.generate_key()).
        "KEYS_ENCRYPTION_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode("ascii"),
    }


def complete(path: Path = PATH) -> list[str]:
    """Create `path` (mode 600) or append the secrets it lacks; returns the names written."""
    present = set()
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, _ = line.partition("=")
            if sep and not name.lstrip().startswith("#"):
                present.add(name.strip())
    lines = [] if present or path.exists() else ["DEBUG=true"]
    written = [name for name in fresh_secrets() if name not in present]
    values = fresh_secrets()
    lines += [f"{name}={values[name]}" for name in written]
    if not lines:
        return []
    text = path.read_text() if path.exists() else ""
    if text and not text.endswith("\n"):
        lines.insert(0, "")  # the last line has no newline: do not glue a secret onto it
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write("".join(f"{line}\n" for line in lines))
    os.chmod(path, 0o600)
    return written


def main(argv: list[str]) -> int:
    if argv[1:] == ["--print"]:
        for name, value in fresh_secrets().items():
            print(f"{name}={value}")
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    if written := complete():
        print(f"wrote {', '.join(written)} into .env for local development")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
