"""Fast tier for the security stage: parsers, SARIF building, advisory DB handling, secret
masking. Pure logic on golden samples; any real subprocess call fails the test."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import xxhash

from ci import tools
from ci.errors import ConfigError
from ci.result import Finding
from ci.security import advisory_db, deps, sarif, secrets

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "security"
GOLDEN = HERE / "golden"
SCHEMA = json.loads((HERE / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))


def lock(name: str) -> str:
    return (HERE / name / "Cargo.lock").read_text(encoding="utf-8")


# -- advisory database -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "seed", "digest"),
    [
        (b"", 0, 0xEF46DB3751D8E999),
        (b"a", 0, 0xD24EC4F1A98C6E5B),
        (b"abc", 0, 0x44BC2CF5AD770999),
        (b"Nobody inspects the spammish repetition", 0, 0xFBCEA83C8A378BF1),
    ],
)
def test_xxh64_reference_vectors(data: bytes, seed: int, digest: int) -> None:
    # The library computing cargo-deny's folder names gives the reference XXH64 values.
    assert xxhash.xxh64_intdigest(data, seed) == digest


def test_deny_dir_name_matches_cargo_deny() -> None:
    # The folder cargo-deny creates under ~/.cargo/advisory-dbs for the RustSec database.
    assert advisory_db.deny_dir_name() == "advisory-db-3157b0e258782691"
    assert advisory_db.deny_dir_name("https://github.com/RustSec/advisory-db") == (
        "advisory-db-3157b0e258782691"
    )


def test_with_db_points_cargo_deny_at_the_local_database(tmp_path: Path) -> None:
    config = {
        "graph": {"all-features": True},
        "advisories": {"db-path": "~/.cargo/advisory-dbs", "db-urls": ["x"], "yanked": "deny"},
        "licenses": {"allow": ["MIT"]},
    }
    out = advisory_db.with_db(config, tmp_path, 120)
    assert out["advisories"]["db-path"] == str(tmp_path)
    assert out["advisories"]["db-urls"] == [advisory_db.DEFAULT_URL]
    assert out["advisories"]["yanked"] == "deny"
    assert out["licenses"] == {"allow": ["MIT"]}
    assert config["advisories"]["db-path"] == "~/.cargo/advisory-dbs"  # input untouched
    assert advisory_db.with_db({}, tmp_path, 1)["advisories"]["db-path"] == str(tmp_path)


@pytest.mark.parametrize("policy", ["deny.toml", "ci/deny.toml"])
def test_project_deny_toml_is_current_schema(policy: str) -> None:
    import tomllib

    doc = tomllib.loads((HERE.parent.parent.parent / policy).read_text(encoding="utf-8"))
    removed = {"vulnerability", "notice", "severity-threshold"}
    assert not removed & set(doc["advisories"]), "keys removed in cargo-deny 0.16+"
    assert not {"unlicensed", "copyleft", "default", "deny"} & set(doc["licenses"])
    assert "GPL-3.0" not in doc["licenses"]["allow"]
    assert {"MIT", "Apache-2.0", "BSD-3-Clause"} <= set(doc["licenses"]["allow"])
    assert doc["sources"]["unknown-registry"] == doc["sources"]["unknown-git"] == "deny"


def test_read_deny_config_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        advisory_db.read_deny_config(tmp_path / "deny.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[advisories\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid TOML"):
        advisory_db.read_deny_config(bad)


class FakeGit(advisory_db.Git):
    """Scripted git: `heads` {path: (commit, time)}, a fetch that fails or creates a copy."""

    def __init__(self, heads: dict[Path, tuple[str, float]], fetch_ok: bool = False) -> None:
        super().__init__({})
        self.heads = dict(heads)
        self.fetch_ok = fetch_ok
        self.calls: list[list[str]] = []

    def __call__(self, args, timeout: float = 60) -> tuple[int, str]:
        self.calls.append(list(args))
        if not self.fetch_ok:
            return 128, "fatal: unable to access 'https://github.com/': Could not resolve host"
        target = Path(args[-1]) if args[0] == "clone" else Path(args[1])
        target.mkdir(parents=True, exist_ok=True)
        # a clone lands in ".<cache>.tmp-<pid>" and is renamed into place
        final = target.with_name(target.name.split(".tmp-")[0].lstrip("."))
        self.heads[final] = ("f" * 40, NOW - 3600)
        return 0, ""

    def head(self, path: Path) -> tuple[str, float] | None:
        return self.heads.get(path)


NOW = 2_000_000_000.0
DAY = advisory_db.DAY_S


def db_config(tmp_path: Path, **kw) -> advisory_db.DbConfig:
    values = dict(
        configured=None,
        offline=False,
        cache=tmp_path / "cache",
        fetch_timeout=5,
        warn_age_days=7,
        max_age_days=120,
        cargo_home=tmp_path / "cargo",
    )
    values.update(kw)
    return advisory_db.DbConfig(**values)


def test_configured_database_is_used_as_is_and_aged(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    git = FakeGit({mine: ("a" * 40, NOW - 10 * DAY)})
    db = advisory_db.resolve(db_config(tmp_path, configured=mine), git, NOW)
    assert db.usable and db.path == mine and db.source == "configured"
    assert round(db.age_days) == 10 and "10 days old" in db.warning
    assert git.calls == []  # nothing fetched
    with pytest.raises(ConfigError, match="not a git checkout"):
        advisory_db.resolve(db_config(tmp_path, configured=tmp_path / "nope"), git, NOW)


def test_fetch_success_is_fresh(tmp_path: Path) -> None:
    git = FakeGit({}, fetch_ok=True)
    db = advisory_db.resolve(db_config(tmp_path), git, NOW)
    assert db.usable and db.source == "fetched now" and db.warning == ""
    assert git.calls[0][0] == "clone"


def test_fetch_failure_falls_back_to_the_newest_cached_copy(tmp_path: Path) -> None:
    audit = tmp_path / "cargo" / "advisory-db"
    deny = tmp_path / "cargo" / "advisory-dbs" / "advisory-db-3157b0e258782691"
    deny.mkdir(parents=True)
    git = FakeGit({audit: ("a" * 40, NOW - 30 * DAY), deny: ("b" * 40, NOW - 2 * DAY)})
    db = advisory_db.resolve(db_config(tmp_path), git, NOW)
    assert db.usable and db.path == deny and db.commit == "b" * 40
    assert "cached copy" in db.source and "Could not resolve host" in db.source
    assert db.warning.startswith("using a cached copy")


def test_too_old_or_missing_database_is_not_checked_never_passed(tmp_path: Path) -> None:
    old = tmp_path / "cargo" / "advisory-db"
    git = FakeGit({old: ("a" * 40, NOW - 200 * DAY)})
    db = advisory_db.resolve(db_config(tmp_path), git, NOW)
    assert not db.usable and "200 days old, over the 120-day maximum" in db.unavailable
    none = advisory_db.resolve(db_config(tmp_path, offline=True), FakeGit({}), NOW)
    assert not none.usable
    assert none.unavailable == "no advisory database: offline mode, no cached copy"
    assert "CIPIPE_SECURITY__ADVISORY_DB" in advisory_db.OFFLINE_FIX


def test_offline_mode_never_fetches(tmp_path: Path) -> None:
    cached = tmp_path / "cache"
    git = FakeGit({cached: ("c" * 40, NOW - DAY)}, fetch_ok=True)
    db = advisory_db.resolve(db_config(tmp_path, offline=True), git, NOW)
    assert db.usable and db.path == cached and git.calls == []


# -- cargo-audit / cargo-deny parsing ------------------------------------------------------


def test_lock_lines_point_at_package_name() -> None:
    index = deps.lock_lines(lock("vulnerable"))
    line = index[("itoa", "1.0.18")]
    assert lock("vulnerable").splitlines()[line - 1] == 'name = "itoa"'


def test_parse_audit_vulnerability() -> None:
    text = (GOLDEN / "audit-vulnerable.json").read_text(encoding="utf-8")
    [finding] = deps.parse_audit_json(text, lock("vulnerable"))
    assert finding.rule == "RUSTSEC-2099-0001"
    assert "RUSTSEC-2099-0001" in finding.message and ">=1.0.19" in finding.message
    assert finding.crate == "itoa@1.0.18"
    assert (finding.file, finding.line, finding.severity) == ("Cargo.lock", 6, "error")


def test_parse_audit_unmaintained_follows_setting() -> None:
    report = {
        "vulnerabilities": {"list": []},
        "warnings": {
            "unmaintained": [
                {
                    "kind": "unmaintained",
                    "advisory": {"id": "RUSTSEC-2099-0002", "title": "gone"},
                    "package": {"name": "itoa", "version": "1.0.18"},
                    "versions": {"patched": []},
                }
            ],
            "yanked": [{"kind": "yanked", "package": {"name": "itoa", "version": "1.0.18"}}],
        },
    }
    text = json.dumps(report)
    warned = deps.parse_audit_json(text, lock("vulnerable"), unmaintained="warn")
    assert {(f.rule, f.severity) for f in warned} == {
        ("RUSTSEC-2099-0002", "warning"),
        ("yanked", "error"),
    }
    denied = deps.parse_audit_json(text, lock("vulnerable"), unmaintained="deny")
    assert all(f.severity == "error" for f in denied)


def test_parse_audit_rejects_non_reports() -> None:
    with pytest.raises(ValueError):
        deps.parse_audit_json("error: couldn't fetch advisory database", "")


def test_parse_deny_license_rejection() -> None:
    text = (GOLDEN / "deny-gpl.jsonl").read_text(encoding="utf-8")
    report = deps.parse_deny_json(text, lock("gpl_license"), config_file="deny.toml")
    errors = [f for f in report.findings if f.severity == "error"]
    assert [f.rule for f in errors] == ["rejected"]
    assert errors[0].crate == "gpl-dep@0.1.0" and "GPL-3.0" in errors[0].message
    assert errors[0].file == "Cargo.lock" and errors[0].line
    assert report.errors["licenses"] == 1
    config = [f for f in report.findings if f.rule == "license-not-encountered"]
    assert config and all(f.file == "deny.toml" and f.severity == "warning" for f in config)


def test_parse_deny_git_source() -> None:
    text = (GOLDEN / "deny-git.jsonl").read_text(encoding="utf-8")
    report = deps.parse_deny_json(text, "", config_file="deny.toml")
    [error] = [f for f in report.findings if f.severity == "error"]
    assert error.rule == "source-not-allowed" and error.crate == "gitdep@0.1.0"
    assert "git" in error.message and "\n" not in error.message
    assert report.errors["sources"] == 1


def test_parse_deny_unmaintained_downgraded() -> None:
    line = json.dumps(
        {
            "type": "diagnostic",
            "fields": {
                "code": "unmaintained",
                "severity": "error",
                "message": "crate is unmaintained",
                "advisory": {"id": "RUSTSEC-2099-0003"},
                "graphs": [{"Krate": {"name": "itoa", "version": "1.0.18"}}],
                "labels": [],
            },
        }
    )
    [warned] = deps.parse_deny_json(line, "", config_file="d", unmaintained="warn").findings
    assert (warned.rule, warned.severity) == ("RUSTSEC-2099-0003", "warning")
    [denied] = deps.parse_deny_json(line, "", config_file="d", unmaintained="deny").findings
    assert denied.severity == "error"


# -- SARIF -------------------------------------------------------------------------------


def sample_runs() -> list[sarif.ToolRun]:
    return [
        sarif.ToolRun(
            "advisories",
            "cargo-audit",
            "0.22.2",
            "https://rustsec.org",
            [
                Finding(
                    "advisories",
                    "RUSTSEC-2099-0001 itoa 1.0.18: bad",
                    rule="RUSTSEC-2099-0001",
                    file="Cargo.lock",
                    line=6,
                    crate="itoa@1.0.18",
                )
            ],
        ),
        sarif.ToolRun(
            "policy",
            "cargo-deny",
            "0.20.2",
            "https://embarkstudios.github.io/cargo-deny/",
            [
                Finding("policy", "no file", rule="parse-error", severity="warning"),
                Finding("policy", "rejected", rule="rejected", file="Cargo.lock", line=3),
            ],
        ),
        sarif.ToolRun("secrets", "detect-secrets", None, "https://example.invalid/", []),
    ]


def test_sarif_validates_against_schema() -> None:
    log = sarif.build_log(sample_runs())
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert log["version"] == "2.1.0"


def test_sarif_one_run_per_check_with_rules_and_locations() -> None:
    log = sarif.build_log(sample_runs())
    runs = log["runs"]
    assert [r["tool"]["driver"]["name"] for r in runs] == [
        "cargo-audit",
        "cargo-deny",
        "detect-secrets",
    ]
    [result] = runs[0]["results"]
    assert result["ruleId"] == "RUSTSEC-2099-0001" and result["level"] == "error"
    loc = result["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "Cargo.lock" and loc["region"]["startLine"] == 6
    policy = runs[1]
    assert [r["id"] for r in policy["tool"]["driver"]["rules"]] == ["parse-error", "rejected"]
    assert policy["results"][0]["level"] == "warning"
    # A finding without a file still gets a location (GitHub requires one).
    assert policy["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert runs[2]["results"] == [] and "version" not in runs[2]["tool"]["driver"]


# -- secrets -----------------------------------------------------------------------------


def test_scan_finds_values_and_baseline_allows_reviewed_hits(tmp_path: Path) -> None:
    key = "AKIA" + "Q3VLKVN2ZXOT4DHW"  # an AWS-shaped test value (split: not a hit here)
    (tmp_path / "a.toml").write_text(f'access = "{key}"\n', encoding="utf-8")
    [hit] = secrets.run_scan(tmp_path, ["a.toml"], {})
    assert (hit.kind, hit.file, hit.line, hit.value) == ("AWS Access Key", "a.toml", 1, key)
    assert key not in repr(hit)  # the value never shows in a repr
    base = tmp_path / ".secrets.baseline"
    base.write_text(
        json.dumps(
            {
                "results": {"a.toml": [{"type": "AWS Access Key", "hashed_secret": hit.hashed}]},
                "plugins_used": [{"name": "AWSKeyDetector"}],
                "filters_used": [
                    {"path": secrets._EXCLUDE_FILTER, "pattern": ["^fixtures/"]},
                    {
                        "path": "detect_secrets.filters.common."
                        "is_ignored_due_to_verification_policies",
                        "min_level": 2,
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    baseline = secrets.load_baseline(base)
    assert baseline.allows(hit)
    assert baseline.excludes == ["^fixtures/"]
    assert all("verif" not in str(f) for f in baseline.config["filters_used"])
    assert secrets.load_baseline(tmp_path / "missing").allowed == set()
    base.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="detect-secrets baseline"):
        secrets.load_baseline(base)


def test_excludes_always_skip_target_and_git() -> None:
    patterns = secrets.compile_excludes(secrets.ALWAYS_EXCLUDE)
    assert secrets.excluded("target/debug/x", patterns)
    assert secrets.excluded("crates/a/target/x", patterns)
    assert secrets.excluded(".git/config", patterns)
    assert not secrets.excluded("src/targets.rs", patterns)
    with pytest.raises(ConfigError):
        secrets.compile_excludes(["("])


def test_repo_baseline_excludes_planted_fixtures() -> None:
    baseline = secrets.load_baseline(HERE.parent.parent.parent / ".secrets.baseline")
    patterns = secrets.compile_excludes(baseline.excludes)
    assert secrets.excluded("tests/fixtures/security/secrets/config/settings.toml", patterns)
    assert not secrets.excluded("ci/stages/security.py", patterns)


def test_rule_id() -> None:
    assert secrets.rule_id("AWS Access Key") == "aws-access-key"
    assert secrets.rule_id("Private Key") == "private-key"


# -- tools -------------------------------------------------------------------------------


def test_tools_table_and_version_parsing() -> None:
    assert tools.get("cargo-audit").spec == "cargo-audit@0.22.2"
    assert tools.get("cargo-deny").spec == "cargo-deny@0.20.2"
    assert "cargo-nextest" in tools.TOOLS
    assert tools.parse_version("cargo-audit-audit 0.22.2") == "0.22.2"
    assert tools.parse_version("cargo-nextest 0.9.143 (60fa45f63 2026-08-04)") == "0.9.143"
    assert tools.parse_version("nothing") is None
    with pytest.raises(ConfigError, match="pinned tools"):
        tools.get("cargo-nope")


def test_cargo_s_own_vcs_record_is_never_scanned() -> None:
    # Every published crate carries .cargo_vcs_info.json with its commit's sha1: a hex
    # string of high entropy that is no secret (the corpus found it in every crate).
    patterns = secrets.compile_excludes(secrets.ALWAYS_EXCLUDE)
    assert secrets.excluded(".cargo_vcs_info.json", patterns)
    assert secrets.excluded("member/.cargo_vcs_info.json", patterns)
    assert not secrets.excluded("src/cargo_vcs_info.json.rs", patterns)
