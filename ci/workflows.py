"""Check-mode twin of `.github/workflows/`: the YAML holds no logic.

Every workflow must be valid against GitHub's workflow schema (SchemaStore's, as vendored
by the check-jsonschema package), and every `run:` must be one of:
- the one set-up step of its job, `bash .ci/setup [part ...]` (or `python -m pip install
  ...` where bash scripts are out of place, e.g. a Windows job), before anything else runs;
- `nox -s <session>` naming exactly one session the stage registry generates;
- `invoke <task> [--flag ...]` naming a task of the invoke collection and only flags it has.
No `${{ }}` inside a script (data reaches the shell through `env`, never pasted into code).
No job a pull request can trigger gets a credential that writes the history store
(ci/workflow_secrets.py).

`problems(...)` is pure (workflows in, one line per problem out); `invoke workflows.check`
and the test suite call it with the real sessions and tasks.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ci.errors import ConfigError, ToolMissing

# Re-exported: callers read workflow files through this module or ci/workflow_file.py.
from ci.workflow_file import Workflow as Workflow
from ci.workflow_file import load as load
from ci.workflow_file import load_all as load_all

SETUP = ("bash", ".ci/setup")
SETUP_PARTS = ("apt", "browser", "python", "dev", "tools")


def _setup_part(part: str) -> bool:
    """A known part of `.ci/setup`: one of SETUP_PARTS, or `tools:<stage>[,<stage>]` with
    stages (or flows) that exist."""
    if part in SETUP_PARTS:
        return True
    if not part.startswith("tools:"):
        return False
    from ci.registry import STAGES

    known = {s.name for s in STAGES} | {"release"}
    names = part.removeprefix("tools:").split(",")
    return bool(names) and all(n in known for n in names)


PIP_INSTALL = ("python", "-m", "pip", "install")
_SHELL_OPERATORS = ("&&", "||", ";", "|", ">", "<", "`", "$(")


def schema() -> dict[str, Any]:
    """GitHub's workflow JSON schema as check-jsonschema vendors it (no network)."""
    try:
        from importlib.resources import files

        text = (
            files("check_jsonschema.builtin_schemas.vendor")
            .joinpath("github-workflows.json")
            .read_text(encoding="utf-8")
        )
    except (ModuleNotFoundError, FileNotFoundError):
        raise ToolMissing(
            "check-jsonschema",
            "pip install -e '.[dev]' (check-jsonschema ships the workflow schema)",
        ) from None
    return json.loads(text)


def schema_errors(workflow: Workflow, workflow_schema: Mapping[str, Any]) -> list[str]:
    """One line per schema violation, with the path of the offending key."""
    import jsonschema

    validator = jsonschema.Draft7Validator(workflow_schema)
    lines = []
    for err in sorted(validator.iter_errors(workflow.doc), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in err.path) or "(top)"
        lines.append(f"{workflow.path.name}: {where}: {err.message[:200]}")
    return lines


def _steps(workflow: Workflow) -> Iterable[tuple[str, int, dict[str, Any]]]:
    for job_name, job in (workflow.doc.get("jobs") or {}).items():
        for index, step in enumerate((job or {}).get("steps") or []):
            if isinstance(step, dict):
                yield job_name, index, step


def run_problems(
    workflow: Workflow, sessions: Sequence[str], tasks: Mapping[str, Sequence[str]]
) -> list[str]:
    """One line per `run:` that is not a single call of an existing session or task.
    `tasks` maps each invoke task name to its flags (`--html`, ...)."""
    found: list[str] = []
    setup_seen: dict[str, bool] = {}
    called: dict[str, bool] = {}
    for job, index, step in _steps(workflow):
        if "run" not in step:
            continue
        where = f"{workflow.path.name}: job {job}, step {index + 1}"
        script = str(step["run"]).strip()
        if "${{" in script:
            found.append(f"{where}: `${{{{ }}}}` inside run: pass the value through env")
            continue
        if "\n" in script or any(op in script for op in _SHELL_OPERATORS):
            found.append(f"{where}: run must be one command, got {script!r}")
            continue
        try:
            argv = shlex.split(script)
        except ValueError as err:
            found.append(f"{where}: cannot parse {script!r}: {err}")
            continue
        if tuple(argv[:2]) == SETUP or tuple(argv[:4]) == PIP_INSTALL:
            bad = [p for p in argv[2:] if not _setup_part(p)] if argv[0] == "bash" else []
            if bad:
                found.append(f"{where}: unknown set-up part(s) {', '.join(bad)}")
            elif setup_seen.get(job):
                found.append(f"{where}: a job has one set-up step")
            elif called.get(job):
                found.append(f"{where}: the set-up step comes before the pipeline calls")
            setup_seen[job] = True
            continue
        called[job] = True
        problem = _call_problem(argv, sessions, tasks)
        if problem:
            found.append(f"{where}: {problem}")
    return found


def _call_problem(
    argv: list[str], sessions: Sequence[str], tasks: Mapping[str, Sequence[str]]
) -> str:
    """Why `argv` is not one session or task call ("" when it is)."""
    if argv[0] == "nox":
        if len(argv) < 3 or argv[1] not in ("-s", "--session", "--sessions"):
            return f"`{shlex.join(argv)}`: call exactly one session as `nox -s <session>`"
        rest = argv[3:]
        if rest and rest[0] != "--":
            return f"`{shlex.join(argv)}`: one session per step (GitHub fans them out)"
        if argv[2] not in sessions:
            return f"nox session {argv[2]!r} does not exist (sessions: {', '.join(sessions)})"
        return ""
    if argv[0] == "invoke":
        if len(argv) < 2 or argv[1].startswith("-"):
            return f"`{shlex.join(argv)}`: name one invoke task"
        name, flags = argv[1], [a for a in argv[2:] if a.startswith("--")]
        if name not in tasks:
            return f"invoke task {name!r} does not exist (tasks: {', '.join(sorted(tasks))})"
        tasks_after = [a for a in argv[2:] if not a.startswith("-") and a in tasks]
        if tasks_after:
            return f"`{shlex.join(argv)}`: one task per step"
        unknown = [f for f in flags if f.split("=", 1)[0] not in tasks[name]]
        if unknown:
            return f"invoke {name} has no option {', '.join(unknown)}"
        return ""
    return f"`{shlex.join(argv)}` is neither `nox -s <session>` nor `invoke <task>`"


def invoke_tasks(collection: Any) -> dict[str, list[str]]:
    """{task name: its `--flags`} of an invoke Collection (dotted names for namespaces)."""
    tasks: dict[str, list[str]] = {}
    for name in collection.task_names:
        task = collection[name]
        flags: list[str] = []
        for arg in task.get_arguments():
            flags += [f"--{n.replace('_', '-')}" for n in arg.names if len(n) > 1]
            flags += [f"--no-{n.replace('_', '-')}" for n in arg.names if arg.kind is bool]
        tasks[name] = flags
    return tasks


def problems(
    folder: Path, sessions: Sequence[str], tasks: Mapping[str, Sequence[str]]
) -> list[str]:
    """Every problem of every workflow in `folder`: schema, then run lines."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no workflows folder")
    workflows = load_all(folder)
    if not workflows:
        raise ConfigError(f"{folder}: no workflow files (*.yml)")
    from ci.workflow_secrets import pull_request_leaks

    workflow_schema = schema()
    found: list[str] = []
    for wf in workflows:
        found += schema_errors(wf, workflow_schema)
        found += run_problems(wf, sessions, tasks)
        found += pull_request_leaks(wf)
    return found
