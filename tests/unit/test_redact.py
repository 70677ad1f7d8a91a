from __future__ import annotations

import html
import io
import json
import shlex
from urllib.parse import quote, quote_plus

import pytest

from ci.redact import Redactor, add_mask_lines, mask_value, secret_name, secrets_from_env
from ci.runner import Runner, child_env


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


def test_runner_masks_and_never_prints_add_mask(tmp_path) -> None:
    out = io.StringIO()
    log = tmp_path / "stage.log"
    with Runner(Redactor(["tok-123456"]), log_path=log, github=True, stream=out) as runner:
        runner.say("using tok-123456 now")
        with runner.group("build"):
            runner.error("failed with tok-123456")
    text = out.getvalue()
    assert "add-mask" not in text  # the console may be saved (console.log): never here
    assert "using *** now" in text
    assert "::group::build" in text and "::endgroup::" in text
    assert "::error::failed with ***" in text
    assert "tok-123456" not in log.read_text() and "tok-123456" not in text


SECRET = "p&<a>'s\"w\\d%/ +"


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        json.dumps(SECRET)[1:-1],  # inside a JSON string
        html.escape(SECRET),  # XML / HTML text and attributes
        html.escape(SECRET).replace("&#x27;", "&apos;"),
        quote(SECRET, safe=""),  # a URL password
        quote_plus(SECRET),
        shlex.quote(SECRET),  # an echoed command line
    ],
)
def test_every_encoded_form_is_masked(form: str) -> None:
    r = Redactor([SECRET])
    assert r(f"before {form} after") == "before *** after"


def test_multi_line_secret_masked_line_by_line_and_add_mask_per_line() -> None:
    pem = (
        "-----BEGIN KEY-----\n"
        "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
        "-----END KEY-----"
    )
    r = Redactor([pem])
    line2 = pem.splitlines()[1]
    assert r(f"key: {line2}") == "key: ***"
    assert add_mask_lines([pem]) == [f"::add-mask::{x}" for x in pem.splitlines()]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("DOCKER_PASS", True),
        ("GH_PAT", True),
        ("GPG_SIGNING_KEY", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("STRIPE_API_KEY", True),
        ("SLACK_WEBHOOK_URL", True),
        ("CARGO_REGISTRY_TOKEN", True),
        ("PATH", False),
        ("PWD", False),
        ("CACHE_KEY", False),
        ("BYPASS_CACHE", False),
        ("HOME", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert secret_name(name) is secret


def test_percent_encoded_url_password_found_and_masked() -> None:
    env = {"DATABASE_URL": "postgres://app:p%40ss%2Fword@db/app"}
    found = secrets_from_env(env)
    assert found == {"p@ss/word"}
    r = Redactor(found)
    assert r(env["DATABASE_URL"]) == "postgres://app:***@db/app"


def test_masking_structured_data_keeps_keys() -> None:
    r = Redactor(["hunter22"])
    data = {"hunter22": ["x hunter22", 3, {"k": "hunter22"}]}
    assert r.data(data) == {"hunter22": ["x ***", 3, {"k": "***"}]}


def test_child_env_drops_secrets_unless_passed() -> None:
    env = {
        "GITHUB_TOKEN": "ghp_x1234567",
        "DATABASE_URL": "postgres://u:pw1234@h/d",
        "CARGO_TERM_COLOR": "never",
        "MY_CUSTOM": "abcd1234",
        "CIPIPE_SECRET_ENV": "MY_CUSTOM",
    }
    assert child_env(env, secret_names=["MY_CUSTOM"]) == {
        "CARGO_TERM_COLOR": "never",
        "CIPIPE_SECRET_ENV": "MY_CUSTOM",
    }
    assert "GITHUB_TOKEN" in child_env(env, pass_env=["GITHUB_TOKEN"])
    # the pipeline's own settings name secrets; they are not secrets themselves
    assert "MY_CUSTOM" not in secrets_from_env(env)


def test_masked_junit_stays_well_formed_when_the_secret_is_a_tag_word() -> None:
    import xml.etree.ElementTree as ET

    from ci.parsers import parse_junit
    from ci.redact import mask_xml

    text = (
        '<?xml version="1.0"?><testsuites tests="1"><testsuite name="s">'
        '<testcase name="test_login" classname="c"><failure message="pw test">'
        "test output: test</failure></testcase></testsuite></testsuites>"
    )
    masked = mask_xml(text, Redactor(["test"]))
    root = ET.fromstring(masked)  # still XML
    assert root.tag == "testsuites"
    [case] = parse_junit(masked)
    assert case.status == "failed" and case.name == "***_login"
    values = [v for e in root.iter() for v in e.attrib.values()]
    assert "test" not in "".join(root.itertext()) + "".join(values)


@pytest.mark.parametrize("raw", ["tok-VALUE-123\n", "  tok-VALUE-123\t", "\ntok-VALUE-123\r\n"])
def test_a_secret_with_surrounding_whitespace_is_masked_without_it(raw: str) -> None:
    # API_TOKEN="tok-VALUE-123\n": the value a tool prints or a file keeps is the bare one
    r = Redactor(secrets_from_env({"API_TOKEN": raw}))
    assert (
        r('{"summary": "saw tok-VALUE-123 in the header"}')
        == '{"summary": "saw *** in the header"}'
    )
    assert r("url=tok-VALUE-123&x") == "url=***&x"
    assert add_mask_lines(r.values) == ["::add-mask::tok-VALUE-123"]
