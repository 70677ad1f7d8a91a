"""The Codecov upload's pure parts: slug encoding, metadata from the CI environment,
the storage payload (the HTTP exchange runs against the fake in tests/e2e)."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import pytest

from ci import settings
from ci.coverage.codecov import UploadError, encode_slug, metadata, payload
from ci.coverage.config import load

ROOT = Path(__file__).resolve().parents[2]


def test_slugs_are_encoded_as_codecovs_cli_does() -> None:
    assert encode_slug("acme/trading") == "acme::::trading"
    assert encode_slug("group/sub/repo") == "group:::sub::::repo"
    with pytest.raises(UploadError, match="owner/name, got 'trading'"):
        encode_slug("trading")


def test_metadata_from_a_pull_request_run_on_github_actions() -> None:
    cfg = load(settings.load(ROOT, {"CIPIPE_COVERAGE__CODECOV__FLAGS": "rust,unit"}))
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/trading",
        "GITHUB_REF": "refs/pull/42/merge",
        "GITHUB_HEAD_REF": "feature",
        "GITHUB_RUN_ID": "991",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_WORKFLOW": "ci",
    }
    meta = metadata(cfg.codecov, env, "c" * 40, "feature")
    assert (meta.slug, meta.pull_request, meta.branch) == ("acme/trading", "42", "feature")
    assert meta.build_url == "https://github.com/acme/trading/actions/runs/991"
    assert meta.ci_service == "github-actions" and meta.flags == ("rust", "unit")


def test_metadata_of_a_local_run_has_no_pull_request() -> None:
    cfg = load(settings.load(ROOT, {"CIPIPE_COVERAGE__CODECOV__SLUG": "acme/x"}))
    meta = metadata(cfg.codecov, {"GITHUB_REF": "refs/pull/42/merge"}, "c" * 40, "main")
    assert (meta.slug, meta.pull_request, meta.build_url, meta.ci_service) == ("acme/x", "", "", "")


def test_payload_carries_the_report_compressed() -> None:
    body = json.loads(payload(b"<coverage/>", "cobertura.xml"))
    [item] = body["coverage_files"]
    assert item["filename"] == "cobertura.xml" and item["format"] == "base64+compressed"
    assert zlib.decompress(base64.b64decode(item["data"])) == b"<coverage/>"
    assert body["report_fixes"] == {"format": "legacy", "value": {}}
