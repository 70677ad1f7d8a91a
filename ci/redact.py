"""The single redaction point: every secret value the pipeline knows is masked here."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

MASK = "***"
# Environment variable names whose values are secrets.
SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|"
    r"CREDENTIAL|WEBHOOK|AUTH)",
    re.IGNORECASE,
)
# Values shorter than this are not masked: masking "1" or "true" would shred every log.
MIN_SECRET_LEN = 4


def _url_password(value: str) -> str | None:
    if "://" not in value:
        return None
    try:
        return urlsplit(value).password
    except ValueError:
        return None


def secrets_from_env(env: Mapping[str, str], extra_names: Iterable[str] = ()) -> set[str]:
    """Collect secret values from an environment: names that look secret, names listed
    explicitly, and passwords embedded in any URL-valued variable."""
    names = set(extra_names)
    found: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if name in names or SECRET_NAME.search(name):
            found.add(value)
        password = _url_password(value)
        if password:
            found.add(password)
    return {s for s in found if len(s) >= MIN_SECRET_LEN}


class Redactor:
    """Masks known secret values in text. Longest values are replaced first so a secret
    that contains another is not half-masked."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Register more secret values (e.g. a generated service password)."""
        new = {s for s in secrets if s and len(s) >= MIN_SECRET_LEN}
        if not new - self._secrets:
            return
        self._secrets |= new
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    @property
    def values(self) -> frozenset[str]:
        """The registered secret values (for `::add-mask::`)."""
        return frozenset(self._secrets)

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)


def mask_value(value: str) -> str:
    """A displayable masked form of a secret: first 4 characters, then asterisks."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * min(len(value) - 4, 16)
