"""deploy.config and deploy.release: settings, credentials and the release manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from secrets import token_hex

import pytest

from ci import settings as settings_mod
from deploy import config
from deploy.errors import PreconditionFailed
from deploy.release import ImageName, read_release

ROOT = Path(__file__).resolve().parents[2]


def load(**env: str) -> config.StagingConfig:
    base = {"USER": "deployer"}
    return config.load(settings_mod.load(ROOT, {**base, **env}))


def test_defaults_deploy_to_localhost_through_the_local_registry() -> None:
    cfg = load()
    assert (cfg.ssh.host, cfg.ssh.port, cfg.ssh.user) == ("localhost", 22, "deployer")
    assert cfg.url == "http://localhost:8080"
    assert cfg.registry.address == "127.0.0.1:5000" and cfg.registry.loopback
    assert cfg.registry.url == "http://127.0.0.1:5000"
    assert cfg.repository == "trading-system"  # the `binary` setting
    assert cfg.ssh.key is None and cfg.webhook is None and cfg.registry.password is None
    assert cfg.budget == 300 and cfg.e2e and cfg.rollback


def test_remote_registry_uses_tls_and_ipv6_hosts_get_brackets() -> None:
    cfg = load(CIPIPE_STAGING__REGISTRY="registry.example.com:443", CIPIPE_STAGING__HOST="::1")
    assert cfg.registry.url == "https://registry.example.com:443" and not cfg.registry.loopback
    assert cfg.url == "http://[::1]:8080"


def test_credentials_come_from_the_environment_and_never_show(tmp_path: Path) -> None:
    # made at run time: the repository's own secret scan stays green
    key = "\n".join(["-----BEGIN " + "OPENSSH KEY-----", token_hex(20), "-----END X-----", ""])
    password, hook_token = "pw" + token_hex(8), token_hex(12)
    cfg = load(
        STAGING_SSH_KEY=key,
        REGISTRY_USERNAME="ci",
        REGISTRY_PASSWORD=password,
        SLACK_WEBHOOK_URL=f"https://hooks.example/services/T0/B0/{hook_token}",
    )
    assert cfg.ssh.key is not None and cfg.ssh.key.source == "$STAGING_SSH_KEY"
    assert key not in repr(cfg) and password not in repr(cfg) and hook_token not in repr(cfg)
    values = cfg.secrets()
    assert key in values and password in values
    # HTTP libraries quote the path alone: it is a secret too
    assert f"/services/T0/B0/{hook_token}" in values


def test_credentials_from_files(tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.write_text("https://hooks.example/services/x/y/z\n")
    password = tmp_path / "pw"
    password.write_text("from-a-file\n")
    cfg = load(
        CIPIPE_STAGING__WEBHOOK_FILE=str(hook),
        CIPIPE_STAGING__REGISTRY_PASSWORD_FILE=str(password),
        REGISTRY_USERNAME="ci",
    )
    assert cfg.webhook is not None and cfg.webhook.value.endswith("/z")
    assert cfg.registry.password is not None and cfg.registry.password.value == "from-a-file"
    assert cfg.registry.password.source == str(password)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CIPIPE_STAGING__SERVICE_ENV": "NOEQUALS"}, "'NOEQUALS' is not KEY=VALUE"),
        ({"CIPIPE_STAGING__PROJECT": "Bad Name"}, "is not a compose project name"),
        ({"CIPIPE_STAGING__REGISTRY": "host/path"}, "expected host:port"),
        ({"CIPIPE_STAGING__URL": "ftp://x"}, "is not an http URL"),
        ({"CIPIPE_STAGING__HOST": " "}, "staging.host is empty"),
        ({"REGISTRY_PASSWORD": token_hex(6)}, "$REGISTRY_USERNAME is not"),
        ({"SLACK_WEBHOOK_URL": "not-a-url"}, "is not an http(s) URL"),
        ({"CIPIPE_STAGING__WEBHOOK_FILE": "/nonexistent/hook"}, "cannot read the webhook URL file"),
    ],
)
def test_bad_configuration_is_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(PreconditionFailed) as err:
        load(**env)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_service_env_pairs() -> None:
    cfg = load(CIPIPE_STAGING__SERVICE_ENV="RUST_LOG=debug,TS_FAULT_UNHEALTHY=1")
    assert cfg.service_env == (("RUST_LOG", "debug"), ("TS_FAULT_UNHEALTHY", "1"))


def write_manifest(folder: Path, binary: bytes, **over: object) -> Path:
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "trading-system").write_bytes(binary)
    data = {
        "version": "1.2.3+build.7",
        "commit": "a" * 40,
        "target": "x86_64-unknown-linux-gnu",
        "source_date_epoch": 1_700_000_000,
        "binary": {
            "path": "bin/trading-system",
            "name": "trading-system",
            "sha256": hashlib.sha256(binary).hexdigest(),
        },
        **over,
    }
    path = folder / "manifest.json"
    path.write_text(json.dumps(data))
    return path


def test_release_is_read_and_checked_against_its_digest(tmp_path: Path) -> None:
    release = read_release(write_manifest(tmp_path, b"\x7fELF binary"))
    assert release.tags() == ("1.2.3_build.7", "sha-" + "a" * 12)
    assert release.created == "2023-11-14T22:13:20Z"
    name = ImageName("127.0.0.1:5000", "trading-system")
    assert name.tagged("1.0") == "127.0.0.1:5000/trading-system:1.0"
    assert name.pinned("sha256:ab") == "127.0.0.1:5000/trading-system@sha256:ab"


def test_a_main_build_is_staged_under_its_version_but_checked_for_its_crate_s(
    tmp_path: Path,
) -> None:
    """The binary of `0.1.0-main.g<commit>` reports 0.1.0 on /health (the act tier's push
    to main found staging's smoke test expecting the build's version there)."""
    release = read_release(
        write_manifest(
            tmp_path, b"\x7fELF", version="0.1.0-main.gaaaaaaaaaaaa", crate_version="0.1.0"
        )
    )
    assert release.tags()[0] == "0.1.0-main.gaaaaaaaaaaaa"
    assert release.reported_version == "0.1.0"
    older = read_release(write_manifest(tmp_path / "old", b"\x7fELF", version="1.2.3"))
    assert older.reported_version == "1.2.3"  # a manifest from before crate_version


def test_a_binary_changed_after_the_release_is_refused(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, b"original")
    (tmp_path / "bin" / "trading-system").write_bytes(b"tampered")
    with pytest.raises(PreconditionFailed, match="does not match its manifest"):
        read_release(path)


def test_no_manifest_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(PreconditionFailed, match=r"invoke release --tag vX\.Y\.Z --no-publish"):
        read_release(tmp_path / "release" / "manifest.json")


def test_a_manifest_without_a_commit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PreconditionFailed, match="names no commit SHA"):
        read_release(write_manifest(tmp_path, b"x", commit="HEAD"))
