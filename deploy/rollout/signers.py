"""SSH signatures of approvals, made and checked by OpenSSH's `ssh-keygen -Y` (the
mechanism of git's SSH commit signing), against an allowed-signers file committed in
the repository (`deploy/approvers`, the format of git's `gpg.ssh.allowedSignersFile`:
`principal [options] keytype base64-key [comment]`, see ssh-keygen(1) "ALLOWED
SIGNERS").

One key is one person: the file is refused when a line names a pattern or a list of
principals, is a certificate authority (it would vouch for keys the file does not
list), or when one key appears on two lines. A person may have several keys (several
lines with the same principal); they still count once.
"""

from __future__ import annotations

import base64
import re
import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import DeployError, PreconditionFailed

KEY_TYPES = re.compile(
    r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$"
)
TIMEOUT = 30


@dataclass(frozen=True)
class Signer:
    """One line of the allowed-signers file."""

    principal: str
    key: str  # "keytype base64"
    line: int


@dataclass(frozen=True)
class Verified:
    """A good signature: who (the file's principal) and with which key."""

    principal: str
    fingerprint: str


def _split_options(rest: str) -> tuple[str, str]:
    """(options, "keytype key ...") of what follows the principal: options are one
    comma-separated token whose quoted values may hold spaces."""
    if KEY_TYPES.match(rest.split(" ", 1)[0]):
        return "", rest
    m = re.match(r'((?:[^\s"]|"[^"]*")+)\s+(.*)', rest)
    return (m.group(1), m.group(2)) if m else (rest, "")


def parse_allowed(text: str, where: str) -> list[Signer]:
    """The signers of an allowed-signers file; PreconditionFailed naming the line that
    breaks "one key = one person"."""
    signers: list[Signer] = []
    seen: dict[str, Signer] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        principal, _, rest = line.partition(" ")
        options, key_part = _split_options(rest.strip())
        fields = key_part.split()
        at = f"{where}:{number}"
        if len(fields) < 2 or not KEY_TYPES.match(fields[0]):
            raise PreconditionFailed(f"{at}: expected `principal [options] keytype key`")
        try:
            base64.b64decode(fields[1], validate=True)
        except ValueError:
            raise PreconditionFailed(f"{at}: the key is not base64") from None
        if re.search(r'[*?!,"]', principal) or not principal:
            raise PreconditionFailed(
                f"{at}: {principal!r} is not one person (no patterns or lists: one key = one "
                "principal)"
            )
        if "cert-authority" in options.lower():
            raise PreconditionFailed(
                f"{at}: cert-authority keys vouch for keys the file does not list: name each "
                "approver's own key"
            )
        key = f"{fields[0]} {fields[1]}"
        if key in seen and seen[key].principal != principal:
            raise PreconditionFailed(
                f"{at}: this key is also {seen[key].principal!r} (line {seen[key].line}): one "
                "key = one person"
            )
        seen[key] = Signer(principal, key, number)
        signers.append(seen[key])
    return signers


def load_allowed(path: Path) -> list[Signer]:
    """The approvers; PreconditionFailed when the file is missing, bad or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PreconditionFailed(
            f"{path}: cannot read the approvers' keys ({err.strerror}): commit the "
            "allowed-signers file (see [production] approvers_file)"
        ) from None
    signers = parse_allowed(text, str(path))
    if not signers:
        raise PreconditionFailed(
            f"{path} lists no approver: add one line per person, `name@example.com "
            "ssh-ed25519 AAAA...` (their public key), and commit it"
        )
    return signers


def _keygen(args: list[str], data: str, what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["ssh-keygen", *args],
            input=data,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise PreconditionFailed(
            f"ssh-keygen is missing ({what}): install OpenSSH (apt-get install openssh-client)"
        ) from None
    except subprocess.TimeoutExpired:
        raise DeployError(f"ssh-keygen did not answer within {TIMEOUT}s ({what})") from None


def sign(statement: str, key: Path, namespace: str) -> str:
    """The armored signature of `statement` by `key` (a private key file, or a public
    key whose private half is in ssh-agent)."""
    if not key.is_file():
        raise PreconditionFailed(f"signing key {key} does not exist")
    done = _keygen(["-q", "-Y", "sign", "-f", str(key), "-n", namespace], statement, "sign")
    if done.returncode != 0 or "BEGIN SSH SIGNATURE" not in done.stdout:
        why = (done.stderr.strip().splitlines() or ["no signature"])[-1]
        raise PreconditionFailed(f"ssh-keygen could not sign with {key}: {why}")
    return done.stdout


def verify(statement: str, signature: str, allowed: Path, namespace: str) -> Verified | str:
    """Who signed `statement` (their principal in `allowed`), or why it does not count."""
    with tempfile.TemporaryDirectory(prefix="approval-") as tmp:
        sig = Path(tmp) / "statement.sig"
        sig.write_text(signature, encoding="utf-8")
        found = _keygen(["-Y", "find-principals", "-s", str(sig), "-f", str(allowed)], "", "find")
        principals = [p for p in found.stdout.split() if p]
        if found.returncode != 0 or not principals:
            return f"signed by a key not in {allowed.name}"
        if len(principals) > 1:
            return f"its key is listed for {len(principals)} principals"
        args = ["-Y", "verify", "-f", str(allowed), "-I", principals[0], "-n", namespace]
        done = _keygen([*args, "-s", str(sig)], statement, "verify")
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["bad signature"])[-1]
        return f"signature not valid for namespace {namespace!r} ({why})"
    m = re.search(r"with \S+ key (\S+)", done.stdout + done.stderr)
    return Verified(principals[0], m.group(1) if m else "")


def signing_key(env: Mapping[str, str], root: Path) -> Path:
    """The approver's key: $DEPLOY_SIGNING_KEY, else git's `user.signingkey` (as for SSH
    commit signing), else ~/.ssh/id_ed25519."""
    given = env.get("DEPLOY_SIGNING_KEY", "").strip()
    if given:
        return Path(given).expanduser()
    try:
        out = subprocess.run(
            ["git", "config", "--get", "user.signingkey"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=root,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    if out.startswith("key::"):
        raise PreconditionFailed(
            "git's user.signingkey is a literal key: set $DEPLOY_SIGNING_KEY to its file"
        )
    if out:
        return Path(out).expanduser()
    home = Path(env.get("HOME", "~")).expanduser()
    default = home / ".ssh" / "id_ed25519"
    if default.is_file():
        return default
    raise PreconditionFailed(
        "no SSH signing key: set $DEPLOY_SIGNING_KEY (or git's user.signingkey) to your key, "
        f"whose public half is in the approvers file (e.g. {shlex.quote(str(default))})"
    )
