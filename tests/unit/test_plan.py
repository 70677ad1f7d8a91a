from __future__ import annotations

import pytest

from ci.errors import ConfigError
from ci.graph import plan
from ci.registry import STAGES, StageSpec, get_stage


def budget(name: str) -> float:
    return {"lint": 60.0}.get(name, 10.0)


def test_default_plan_follows_registry_graph() -> None:
    steps = plan(None, budget)
    names = [s.name for s in steps]
    assert names == ["lint", "security", "unit", "integration", "bench", "coverage"]
    assert {s.name: s.needs for s in steps} == {
        "lint": (),
        "security": (),
        "unit": ("lint",),
        "integration": ("unit",),  # security blocks the merge, not the tests
        "bench": ("integration",),
        "coverage": ("unit",),  # runs the integration tests itself, beside that stage
    }
    assert [s.name for s in steps if s.exclusive] == ["bench"]  # never shares the cores
    for step in steps:
        for need in step.needs:
            assert names.index(need) < names.index(step.name)
    assert {s.name for s in steps} == {s.name for s in STAGES if s.in_ci}
    assert steps[names.index("lint")].budget_s == 60.0
    # unit starts beside lint, integration beside unit once lint passed; needs still gate
    waits = {s.name: s.waits_for for s in steps}
    assert waits["integration"] == () and waits["unit"] == ()  # both start at once
    assert steps[names.index("integration")].gates == ("unit",)


def test_starts_after_is_restricted_to_the_selection() -> None:
    steps = plan(["integration", "unit"], budget)
    assert [(s.name, s.needs, s.waits_for) for s in steps] == [
        ("unit", (), ()),
        ("integration", ("unit",), ()),  # no lint selected: it starts at once, beside unit
    ]


def test_a_dependency_on_an_unknown_stage_is_refused() -> None:
    stages = (StageSpec("a", "", "m:f", starts_after=("ghost",)),)
    with pytest.raises(ConfigError, match="stage a depends on unknown stage 'ghost'"):
        plan(None, budget, stages=stages)


def test_selection_drops_needs_outside_it() -> None:
    steps = plan(["integration", "unit"], budget)
    assert [(s.name, s.needs) for s in steps] == [("unit", ()), ("integration", ("unit",))]


def test_unknown_stage() -> None:
    with pytest.raises(ConfigError, match="unknown stage"):
        plan(["lint", "deploy-moon"], budget)
    with pytest.raises(ConfigError, match="known stages: lint"):
        get_stage("nope")


def test_cycle_detected() -> None:
    stages = (
        StageSpec("a", "", "m:f", needs=("b",)),
        StageSpec("b", "", "m:f", needs=("a",)),
    )
    with pytest.raises(ConfigError, match="cycle"):
        plan(None, budget, stages=stages)


def test_limits_and_interruptibility_come_with_the_plan() -> None:
    stages = (
        StageSpec("build", "", "m:f"),
        StageSpec("rollout", "", "m:f", needs=("build",), interruptible=False),
    )
    steps = plan(None, budget, lambda name: 3 * budget(name), stages=stages)
    assert [(s.name, s.limit_s, s.interruptible) for s in steps] == [
        ("build", 30.0, True),
        ("rollout", 30.0, False),
    ]
