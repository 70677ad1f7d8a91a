"""Secret masking. Parsers always read raw tool output; masking happens where output is
written (console, logs, result JSON, SARIF, JUnit copies, summaries, tracebacks), so a
mask can never change a verdict.

A secret is masked in every form it is likely to take on its way into a file: as is,
JSON-escaped, XML/HTML-escaped, percent-encoded (URL passwords), shell-quoted (an echoed
command line), and line by line when it spans several lines (PEM keys).
"""

from __future__ import annotations

import html
import json
import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

MASK = "***"
OWN_PREFIX = "CIPIPE_"  # the pipeline's settings (ci/settings.py ENV_PREFIX)
# Values shorter than this are not masked: masking "1" or "true" would shred every log.
MIN_SECRET_LEN = 4

# Environment variable names whose values are secrets, matched word by word (names split
# on "_"), so PATH does not match PAT and PWD (the working directory) is not a password.
_SECRET_WORDS = {
    "TOKEN",
    "SECRET",
    "SECRETS",
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PASSPHRASE",
    "PAT",
    "CREDENTIAL",
    "CREDENTIALS",
    "WEBHOOK",
    "AUTH",
    "COOKIE",
    "APIKEY",
    "PRIVATEKEY",
}
# A name ending in KEY is a secret when the word before says what kind (API_KEY,
# SIGNING_KEY, ...), or when KEY is preceded by nothing that makes it a plain identifier.
_KEY_QUALIFIERS = {
    "API",
    "ACCESS",
    "PRIVATE",
    "SIGNING",
    "SECRET",
    "ENCRYPTION",
    "MASTER",
    "DEPLOY",
    "SSH",
    "GPG",
    "LICENSE",
    "SERVICE",
    "ACCOUNT",
    "CLIENT",
}
_NOT_SECRET = {"PWD", "OLDPWD"}


def secret_name(name: str) -> bool:
    """True when an environment variable called `name` holds a secret."""
    upper = name.upper()
    if upper in _NOT_SECRET:
        return False
    words = [w for w in re.split(r"[^A-Z0-9]+", upper) if w]
    if any(w in _SECRET_WORDS for w in words):
        return True
    if len(words) >= 2 and words[-1] in ("KEY", "KEYS"):
        return words[-2] in _KEY_QUALIFIERS
    return False


def _url_password(value: str) -> str | None:
    if "://" not in value:
        return None
    try:
        password = urlsplit(value.strip()).password
    except ValueError:
        return None
    return unquote(password) if password else None


def secrets_from_env(env: Mapping[str, str], extra_names: Iterable[str] = ()) -> set[str]:
    """Secret values of an environment: names that look secret, names listed explicitly,
    and passwords embedded in any URL-valued variable."""
    names = set(extra_names)
    found: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        # The pipeline's own settings are read by name (CIPIPE_SECRET_ENV lists names, not
        # values); a password inside one of them (a history URL) is still found below.
        own = name.startswith(OWN_PREFIX)
        if name in names or (secret_name(name) and not own):
            found.add(value)
        password = _url_password(value)
        if password:
            found.add(password)
    return {s for s in found if len(s.strip()) >= MIN_SECRET_LEN}


def secret_env_names(env: Mapping[str, str], extra_names: Iterable[str] = ()) -> set[str]:
    """Names of the variables of `env` that carry a secret (by name, listing, or a URL
    with a password): the ones child processes do not get unless a stage declares them."""
    names = set(extra_names)
    return {
        name
        for name, value in env.items()
        if value
        and (
            name in names
            or (secret_name(name) and not name.startswith(OWN_PREFIX))
            or _url_password(value)
        )
    }


def variants(secret: str) -> set[str]:
    """Every form of `secret` worth masking (see the module docstring). A value with
    surrounding whitespace (`API_TOKEN="value\n"`, a secret pasted with its newline) is
    also masked bare: that is how a tool prints it and a file keeps it."""
    forms: set[str] = set()
    for value in {secret, secret.strip()}:
        forms.add(value)
        forms.add(json.dumps(value)[1:-1])
        forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
        forms.add(html.escape(value, quote=True))
        forms.add(html.escape(value, quote=False))
        forms.add(value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
        forms.add(html.escape(value).replace("&#x27;", "&apos;"))
        forms.add(html.escape(value).replace("&#x27;", "&#39;"))
        forms.add(quote(value, safe=""))
        forms.add(quote_plus(value, safe=""))
        forms.add(shlex.quote(value))
    lines = [line.strip() for line in secret.splitlines()]
    if len(lines) > 1:
        forms.update(line for line in lines if len(line) >= MIN_SECRET_LEN)
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


class Redactor:
    """Masks known secret values in text. Longest forms are replaced first so a secret
    that contains another is not half-masked."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._listeners: list[Any] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Register more secret values (e.g. a generated service password)."""
        new = {s for s in secrets if s and len(s.strip()) >= MIN_SECRET_LEN} - self._secrets
        if not new:
            return
        self._secrets |= new
        for secret in new:
            self._forms |= variants(secret)
        ordered = sorted(self._forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
        for listener in self._listeners:
            listener(sorted(new))

    def on_add(self, listener: Any) -> None:
        """Call `listener(values)` for every secret registered from now on (and now, for
        those already known): how `::add-mask::` commands reach the CI runner."""
        self._listeners.append(listener)
        if self._secrets:
            listener(sorted(self._secrets))

    @property
    def values(self) -> frozenset[str]:
        """The registered secret values."""
        return frozenset(self._secrets)

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def safe_cut(self, text: str) -> int:
        """Where `text`, the start of a stream that goes on, can be cut so that
        `self(text[:cut])` is final: no secret form can start before the cut and
        continue past it, neither inside `text` nor into what has not arrived yet.
        Holds back at most the longest form's length (less one)."""
        if self._pattern is None:
            return len(text)
        cut = max(0, len(text) - max(len(f) for f in self._forms) + 1)
        for match in self._pattern.finditer(text):
            if match.start() >= cut:
                break
            if match.end() > cut:  # a whole secret across the cut: cut before it
                return match.start()
        return cut

    def data(self, value: Any) -> Any:
        """A copy of JSON-like data with every string value masked (keys are kept)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value


def mask_xml(text: str, redact: Redactor) -> str:
    """An XML document with every text node and attribute value masked, tags untouched:
    the masked copy stays well-formed whatever the secret (even "test" in
    `<testsuites>`). Text that does not parse is masked as plain text."""
    if not redact.values:
        return text
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return redact(text)
    for node in root.iter():
        if node.text:
            node.text = redact(node.text)
        if node.tail:
            node.tail = redact(node.tail)
        for key, value in node.attrib.items():
            node.attrib[key] = redact(value)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def mask_value(value: str) -> str:
    """A displayable masked form of a secret: first 4 characters, then asterisks."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * min(len(value) - 4, 16)


def add_mask_lines(values: Iterable[str]) -> list[str]:
    """`::add-mask::` workflow commands for `values`, one per line of a multi-line value
    (GitHub masks only the first line of a multi-line add-mask)."""
    out: list[str] = []
    for value in values:
        for line in value.splitlines() or [value]:
            line = line.strip()
            if len(line) >= MIN_SECRET_LEN:
                out.append(f"::add-mask::{line}")
    return out
