"""Keeping secrets out of the store: nothing logged may carry a credential from the environment."""
from __future__ import annotations

import os
import re

SECRET_NAME = re.compile(r"(PASSWORD|TOKEN|SECRET|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL|API_KEY|AUTH)", re.I)
REDACTED = "***"


def secret_values() -> set[str]:
    """Values of environment variables whose names look like credentials (long enough to matter)."""
    return {v for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= 4}


def redact(value):
    """A string with any secret value replaced; other values unchanged."""
    if not isinstance(value, str):
        return value
    for s in secret_values():
        if s in value:
            value = value.replace(s, REDACTED)
    return value


CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")  # the user:password@ of a URI


def safe_uri(uri: str) -> str:
    """A URI fit to print: any user:password@ replaced (http://user:pw@host -> http://***@host)."""
    return CREDENTIALS.sub(f"{REDACTED}@", redact(str(uri)))


def without_credentials(uri: str) -> str:
    return CREDENTIALS.sub("", str(uri))
