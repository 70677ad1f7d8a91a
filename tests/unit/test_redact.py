from __future__ import annotations

import io

from ci.redact import Redactor, mask_value, secrets_from_env
from ci.runner import Runner


def test_secret_names_and_url_passwords() -> None:
    env = {
        "GITHUB_TOKEN": "ghp_abcdefghijklmnop",
        "SLACK_WEBHOOK_URL": "https://hooks.example/T000/B000/XXXX",
        "DATABASE_URL": "postgres://app:s3cr3t-pw@db:5432/app",
        "PATH": "/usr/bin",
        "MY_VALUE": "visible",
        "API_KEY": "ab",  # too short to mask safely
    }
    found = secrets_from_env(env, extra_names=["MY_VALUE"])
    assert "ghp_abcdefghijklmnop" in found
    assert "https://hooks.example/T000/B000/XXXX" in found
    assert "s3cr3t-pw" in found
    assert "visible" in found
    assert "/usr/bin" not in found
    assert "ab" not in found


def test_longest_secret_masked_first() -> None:
    r = Redactor(["abcd", "abcdefgh"])
    assert r("x abcdefgh y abcd") == "x *** y ***"


def test_redactor_add_and_passthrough() -> None:
    r = Redactor()
    assert r("nothing to hide") == "nothing to hide"
    r.add(["hunter22"])
    assert r("pw=hunter22") == "pw=***"
    assert r.values == frozenset({"hunter22"})


def test_mask_value_keeps_prefix_only() -> None:
    assert mask_value("AKIAIOSFODNN7EXAMPLE").startswith("AKIA")
    assert "IOSFODNN7EXAMPLE" not in mask_value("AKIAIOSFODNN7EXAMPLE")
    assert mask_value("short") == "*****"


def test_runner_say_masks_and_github_add_mask(tmp_path) -> None:
    out = io.StringIO()
    log = tmp_path / "stage.log"
    with Runner(Redactor(["tok-123456"]), log_path=log, github=True, stream=out) as runner:
        runner.say("using tok-123456 now")
        with runner.group("build"):
            runner.error("failed with tok-123456")
    text = out.getvalue()
    assert text.startswith("::add-mask::tok-123456\n")
    assert "using *** now" in text
    assert "::group::build" in text and "::endgroup::" in text
    assert "::error::failed with ***" in text
    assert "tok-123456" not in log.read_text()
