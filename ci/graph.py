"""The planned graph of `invoke ci`: the steps to run and what each waits for.

Planning is a pure function of the stage registry, the selection and the budgets. It sits
apart from the executor (ci/flow.py) so that the display (ci/progress.py, ci/live.py) can
name a `Step` without importing the code that runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ci.errors import ConfigError
from ci.registry import STAGES, StageSpec


@dataclass(frozen=True)
class Step:
    """One planned stage, the stages it waits for (restricted to the plan), its limits."""

    name: str
    needs: tuple[str, ...]
    blocking: bool
    budget_s: float
    limit_s: float = 0.0  # hard limit; 0 = none
    interruptible: bool = True
    exclusive: bool = False  # runs with nothing beside it
    # What must pass before it starts (None: its needs); see StageSpec.starts_after.
    starts_after: tuple[str, ...] | None = None

    @property
    def waits_for(self) -> tuple[str, ...]:
        """The stages that must have passed before it starts."""
        return self.needs if self.starts_after is None else self.starts_after

    @property
    def gates(self) -> tuple[str, ...]:
        """Every stage whose failure blocks it: its needs and what it starts after."""
        return tuple(dict.fromkeys((*self.needs, *self.waits_for)))


def plan(
    selected: Sequence[str] | None,
    budgets: Callable[[str], float],
    limits: Callable[[str], float] | None = None,
    stages: Sequence[StageSpec] = STAGES,
) -> list[Step]:
    """The steps to run, in a valid order. `selected` None means every `in_ci` stage.
    A need outside the selection is dropped (running `unit` alone does not pull in
    `lint`). Unknown names and cycles raise ConfigError."""
    by_name = {s.name: s for s in stages}
    for spec in stages:
        for other in (*spec.needs, *(spec.starts_after or ())):
            if other not in by_name:
                raise ConfigError(f"stage {spec.name} depends on unknown stage {other!r}")
    names = [s.name for s in stages if s.in_ci] if selected is None else list(selected)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(
            f"unknown stage(s) {', '.join(unknown)}; known stages: {', '.join(by_name)}"
        )
    chosen = set(names)
    ordered: list[Step] = []
    done: set[str] = set()
    pending = [n for n in by_name if n in chosen]
    while pending:
        progress = False
        for name in list(pending):
            spec = by_name[name]
            needs = tuple(n for n in spec.needs if n in chosen)
            starts = None
            if spec.starts_after is not None:
                starts = tuple(n for n in spec.starts_after if n in chosen)
            if all(n in done for n in (*needs, *(starts or ()))):
                limit = limits(name) if limits else 0.0
                step = Step(
                    name,
                    needs,
                    spec.blocking,
                    budgets(name),
                    limit,
                    spec.interruptible,
                    spec.exclusive,
                    starts,
                )
                ordered.append(step)
                done.add(name)
                pending.remove(name)
                progress = True
        if not progress:
            raise ConfigError(f"stage dependency cycle among: {', '.join(pending)}")
    return ordered
