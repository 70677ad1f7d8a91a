"""Pull-request jobs run the pull request's code: no job a pull_request event can run
gets a credential that writes the shared history store (approvals, e2e verdicts and
deployments live there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci import workflows
from ci.workflow_secrets import Secret, possible_values, pull_request_leaks

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / ".github" / "workflows"


@pytest.mark.parametrize("path", sorted(FOLDER.glob("*.yml")), ids=lambda p: p.name)
def test_no_pull_request_job_gets_a_history_write_credential(path: Path) -> None:
    assert pull_request_leaks(workflows.load(path)) == []


def test_the_pull_request_workflows_are_checked() -> None:
    # the check above is not vacuous: test.yml runs on pull requests and uses the history
    wf = workflows.load(FOLDER / "test.yml")
    assert "pull_request" in wf.doc["on"]
    assert "PIPELINE_HISTORY_URL" in (FOLDER / "test.yml").read_text()


def _wf(tmp_path: Path, text: str) -> workflows.Workflow:
    path = tmp_path / "w.yml"
    path.write_text(text)
    return workflows.load(path)


JOB = """on: {on}
jobs:
  j:
    runs-on: ubuntu-latest
    {job_extra}
    steps:
      - run: invoke history.import
        {step_extra}
        env:
          CIPIPE_HISTORY__URL: {value}
"""


@pytest.mark.parametrize(
    ("on", "value", "job_extra", "step_extra", "leaks"),
    [
        ("pull_request", "${{ secrets.PIPELINE_HISTORY_URL }}", "", "", True),
        ("[push, pull_request_target]", "${{ secrets.PIPELINE_HISTORY_URL }}", "", "", True),
        ("push", "${{ secrets.PIPELINE_HISTORY_URL }}", "", "", False),
        # guarded: empty on a pull request
        (
            "pull_request",
            "${{ github.event_name != 'pull_request' && secrets.PIPELINE_HISTORY_URL || '' }}",
            "",
            "",
            False,
        ),
        # a guard that falls back to the secret when the read-only one is unset
        (
            "pull_request",
            "${{ github.event_name == 'pull_request' && secrets.RO_URL || "
            "secrets.PIPELINE_HISTORY_URL }}",
            "",
            "",
            True,
        ),
        # an index the checker cannot resolve could name any secret
        ("pull_request", "${{ secrets[format('{0}', github.ref)] }}", "", "", True),
        ("pull_request", "${{ format('{0}', secrets.PIPELINE_HISTORY_URL) }}", "", "", True),
        # conditions: skipped only when false for certain
        (
            "pull_request",
            "${{ secrets.PIPELINE_HISTORY_URL }}",
            "",
            "if: github.event_name == 'push'",
            False,
        ),
        (
            "pull_request",
            "${{ secrets.PIPELINE_HISTORY_URL }}",
            "if: ${{ github.event_name != 'pull_request' }}",
            "",
            False,
        ),
        (
            "pull_request",
            "${{ secrets.PIPELINE_HISTORY_URL }}",
            "",
            "if: always() || github.event_name == 'push'",
            True,
        ),
        (
            "pull_request",
            "${{ secrets.PIPELINE_HISTORY_URL }}",
            "if: github.ref == 'refs/heads/main'",  # unknowable here: may run
            "",
            True,
        ),
        ("pull_request", "${{ secrets.CODECOV_TOKEN }}", "", "", False),
    ],
)
def test_leaks_are_found_however_written(
    tmp_path: Path, on: str, value: str, job_extra: str, step_extra: str, leaks: bool
) -> None:
    text = JOB.format(on=on, value=value, job_extra=job_extra, step_extra=step_extra)
    found = pull_request_leaks(_wf(tmp_path, text))
    assert bool(found) == leaks, found
    if leaks:
        assert "job j gets secrets." in found[0] and "history store" in found[0]


def test_inherited_secrets_and_workflow_env_count(tmp_path: Path) -> None:
    text = (
        "on: pull_request\nenv:\n  U: ${{ secrets.PIPELINE_HISTORY_URL }}\njobs:\n"
        "  a:\n    uses: ./.github/workflows/x.yml\n    secrets: inherit\n"
    )
    found = pull_request_leaks(_wf(tmp_path, text))
    assert any("inherits every secret" in f for f in found)
    assert any("secrets.PIPELINE_HISTORY_URL" in f for f in found)


def test_the_evaluator() -> None:
    assert possible_values("github.event_name == 'PULL_REQUEST'", "pull_request") == {True}
    assert possible_values("!(github.event_name == 'push')", "pull_request") == {True}
    assert possible_values("secrets.A || 'x'", "push") == {Secret("A"), "x"}
    assert possible_values("false && secrets.A", "push") == {False}
    with pytest.raises(ValueError):
        possible_values("github.event_name ==", "push")
