"""Pull-request jobs run the pull request's code: they must hold no credential that can
write to shared state. The history store is such state (approvals, staging's e2e
verdicts and the deployment records production trusts live there), so its URL secret
must not reach any job a `pull_request` event can run, however the expression that
passes it is written.

Every `${{ }}` of a job is evaluated for the pull-request event by a small abstract
interpreter of GitHub's expression language: a value the checker cannot know (another
context, a secret that may be unset, a function result) stands for every value it could
take, so `unknown && '' || secrets.X` is reported and `github.event_name != 'pull_request'
&& secrets.X || ''` is not. `if:` conditions skip a job or step only when they are false
for certain.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ci.workflow_file import Workflow

# Secrets that let their holder write to the shared history store.
WRITE_SECRETS = ("PIPELINE_HISTORY_URL",)
PR_EVENTS = ("pull_request", "pull_request_target")

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>&&|\|\||==|!=|<=|>=|[!<>()\[\],.])"
    r"|(?P<name>[A-Za-z_][\w-]*|\*))"
)


@dataclass(frozen=True)
class Secret:
    """`secrets.<name>` (a name of "*": an index the checker cannot resolve)."""

    name: str


class _Unknown:
    """A value the checker cannot know."""

    def __repr__(self) -> str:
        return "?"


UNKNOWN = _Unknown()
Values = frozenset[Any]


def _truth(v: Any) -> set[bool]:
    if isinstance(v, Secret | _Unknown):
        return {True, False}
    return {bool(v)}


class _Parser:
    """Recursive descent over one expression; every node yields the set of values it may
    take when `github.event_name` is `event`."""

    def __init__(self, text: str, event: str) -> None:
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text.rstrip()):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise ValueError(f"cannot read the expression {text!r} at {text[pos:]!r}")
            self.tokens.append(m.group(m.lastgroup or "name"))
            pos = m.end()
        self.i = 0
        self.event = event

    def peek(self) -> str:
        return self.tokens[self.i] if self.i < len(self.tokens) else ""

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if (want is not None and tok != want) or not tok:
            raise ValueError(f"expected {want or 'a value'}, found {tok or 'the end'!r}")
        self.i += 1
        return tok

    def parse(self) -> Values:
        out = self.or_()
        if self.peek():
            raise ValueError(f"unexpected {self.peek()!r}")
        return out

    def or_(self) -> Values:
        return self._chain("||", self.and_, keep_when=True)

    def and_(self) -> Values:
        return self._chain("&&", self.cmp, keep_when=False)

    def _chain(self, op: str, operand: Callable[[], Values], keep_when: bool) -> Values:
        left = operand()
        while self.peek() == op:
            self.take()
            left = frozenset(self._join(left, operand(), keep_when))
        return left

    @staticmethod
    def _join(left: Values, right: Values, keep_when: bool) -> Iterator[Any]:
        # a || b: a when a is truthy, else b; a && b: a when a is falsy, else b.
        for v in left:
            truth = _truth(v)
            if keep_when in truth:
                yield v
            if (not keep_when) in truth:
                yield from right

    def cmp(self) -> Values:
        left = self.unary()
        while self.peek() in ("==", "!=", "<", "<=", ">", ">="):
            op = self.take()
            right = self.unary()
            out: set[Any] = set()
            for a in left:
                for b in right:
                    if op in ("==", "!=") and isinstance(a, str) and isinstance(b, str):
                        out.add((a.lower() == b.lower()) == (op == "=="))
                    else:
                        out |= {True, False}
            left = frozenset(out)
        return left

    def unary(self) -> Values:
        if self.peek() == "!":
            self.take()
            return frozenset(not t for v in self.unary() for t in _truth(v))
        return self.primary()

    def primary(self) -> Values:
        tok = self.take()
        if tok == "(":
            out = self.or_()
            self.take(")")
            return out
        if tok.startswith("'"):
            return frozenset({tok[1:-1].replace("''", "'")})
        if re.fullmatch(r"-?\d+(\.\d+)?", tok):
            return frozenset({float(tok)})
        if tok in ("true", "false", "null"):
            return frozenset({True if tok == "true" else False if tok == "false" else None})
        if self.peek() == "(":
            return self.call()
        return self.reference(tok)

    def call(self) -> Values:
        self.take("(")
        args: set[Any] = set()
        while self.peek() != ")":
            args |= self.or_()
            if self.peek() == ",":
                self.take()
        self.take(")")
        # A function may pass a secret through (format, join, toJSON): keep it in sight.
        return frozenset({UNKNOWN, *(a for a in args if isinstance(a, Secret))})

    def reference(self, root: str) -> Values:
        path = [root]
        index: Values | None = None
        while self.peek() in (".", "["):
            if self.take() == ".":
                path.append(self.take())
            else:
                index = self.or_()
                self.take("]")
                path.append("[]")
        if path == ["github", "event_name"]:
            return frozenset({self.event})
        if root == "secrets" and len(path) == 2:
            if path[1] != "[]":
                return frozenset({Secret(path[1])})
            names = index or frozenset({UNKNOWN})
            return frozenset(Secret(n if isinstance(n, str) else "*") for n in names)
        return frozenset({UNKNOWN})


def possible_values(expression: str, event: str) -> Values:
    """Every value `expression` may take for a run triggered by `event`; ValueError when
    it is not an expression this checker reads."""
    return _Parser(expression, event).parse()


def _expressions(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield from re.findall(r"\$\{\{(.*?)\}\}", value, re.S)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _expressions(v)
    elif isinstance(value, list):
        for v in value:
            yield from _expressions(v)


def _may_run(condition: Any, event: str) -> bool:
    if condition is None:
        return True
    text = str(condition).strip()
    match = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.S)
    values = possible_values(match.group(1) if match else text, event)
    return any(True in _truth(v) for v in values)


def _leaked(value: Any, event: str, write: tuple[str, ...]) -> set[str]:
    found = set()
    for expr in _expressions(value):
        for v in possible_values(expr, event):
            if isinstance(v, Secret) and (v.name in write or v.name == "*"):
                found.add(v.name)
    return found


def pull_request_leaks(wf: Workflow, write: tuple[str, ...] = WRITE_SECRETS) -> list[str]:
    """One line per place a pull-request-triggered job could receive a write credential."""
    on = wf.doc.get("on")
    triggers = [on] if isinstance(on, str) else list(on or [])
    name = wf.path.name
    out = []
    for event in (e for e in PR_EVENTS if e in triggers):
        top = _leaked(wf.doc.get("env"), event, write)
        for job_name, job in (wf.doc.get("jobs") or {}).items():
            try:
                if not _may_run(job.get("if"), event):
                    continue
                if job.get("secrets") == "inherit":
                    out.append(f"{name}: job {job_name} inherits every secret on {event}")
                head = {k: v for k, v in job.items() if k != "steps"}
                got = set(top) | _leaked(head, event, write)
                for step in job.get("steps") or []:
                    if _may_run(step.get("if"), event):
                        got |= _leaked({k: v for k, v in step.items() if k != "if"}, event, write)
            except ValueError as err:
                out.append(f"{name}: job {job_name}: {err}")
                continue
            for secret in sorted(got):
                out.append(
                    f"{name}: job {job_name} gets secrets.{secret} on {event} (it writes the "
                    "history store; a pull request runs its own code): pass it only when "
                    f"github.event_name != '{event}'"
                )
    return out
