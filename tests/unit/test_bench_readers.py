"""Readers of the tools' machine-readable bench output, on golden files: criterion's
`new/*.json` and `--list`, gungraun's JSON summaries, cargo's build messages, cargo
metadata's bench targets; missing or partial output is one clear BenchError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ci.bench import criterion, gungraun, targets
from ci.errors import BenchError

DATA = Path(__file__).parent / "data" / "bench"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bench"


def test_criterion_list_names_every_benchmark() -> None:
    names = criterion.parse_list((DATA / "criterion-list.txt").read_text())
    assert names == [
        "book/insert_into_deep_book",
        "book/sweep_1_levels",
        "book/sweep_10_levels",
        "book/sweep_100_levels",
        "engine/submit_mixed_limit",
        "risk/check_pass",
        "strategy/ma_crossover_tick",
    ]


def test_criterion_home_is_read_by_full_id_including_nested_groups() -> None:
    runs = criterion.read_home(DATA / "criterion")
    assert sorted(runs) == [
        "book/sweep_100_levels",
        "book/sweep_10_levels",
        "book/sweep_1_levels",
        "risk/check_pass",
    ]
    risk = runs["risk/check_pass"]
    sample = json.loads((DATA / "criterion/risk_check_pass/new/sample.json").read_text())
    assert len(risk.per_iteration_ns) == len(sample["iters"])
    assert risk.per_iteration_ns[0] == pytest.approx(sample["times"][0] / sample["iters"][0])
    assert risk.mean_ns is not None and risk.mean_ns > 0


def test_missing_output_for_a_benchmark_names_it(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"missing criterion output for 'book/nope'"):
        criterion.read_one(DATA / "criterion", "book/nope")
    with pytest.raises(BenchError, match="found: nothing"):
        criterion.read_one(tmp_path / "empty", "x")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("sample.json", "partial criterion output: .*sample.json is missing"),
        ("truncate", "unreadable criterion output"),
        ("empty", "holds no samples"),
        ("mismatch", "iters and times differ"),
    ],
)
def test_partial_criterion_output_is_one_clear_error(
    tmp_path: Path, damage: str, message: str
) -> None:
    home = tmp_path / "home"
    shutil.copytree(DATA / "criterion", home)
    new = home / "risk_check_pass" / "new"
    if damage == "sample.json":
        (new / "sample.json").unlink()
    elif damage == "truncate":
        text = (new / "sample.json").read_text()
        (new / "sample.json").write_text(text[: len(text) // 2])
    elif damage == "empty":
        (new / "sample.json").write_text('{"sampling_mode":"Linear","iters":[],"times":[]}')
    else:
        (new / "sample.json").write_text('{"iters":[1,2],"times":[5]}')
    with pytest.raises(BenchError, match=message) as err:
        criterion.read_one(home, "risk/check_pass")
    assert "\n" not in str(err.value)


def test_gungraun_summaries_give_instruction_counts_by_module_path_and_id() -> None:
    runs = gungraun.parse_summaries((DATA / "gungraun.jsonl").read_text())
    assert {name: run.instructions for name, run in runs.items()} == {
        "instructions::book::insert_into_deep_book::deep_book": 644,
        "instructions::book::sweep::levels_10": 6483,
        "instructions::book::sweep::levels_100": 70024,
        "instructions::risk::risk_check_pass": 92,
    }


def test_gungraun_output_without_an_instruction_count_is_partial() -> None:
    line = json.loads((DATA / "gungraun.jsonl").read_text().splitlines()[0])
    line["profiles"] = []
    with pytest.raises(BenchError, match="partial gungraun output for instructions::book"):
        gungraun.parse_summaries(json.dumps(line))
    assert gungraun.parse_summaries("bench printed this\n{not json\n") == {}


def test_cargo_messages_map_bench_targets_to_their_executables() -> None:
    text = (DATA / "cargo-bench-no-run.jsonl").read_text()
    found = targets.executables(text)
    names = sorted(name for _, name in found)
    assert names == ["gated", "instructions", "wall"]  # libs and dependencies are not benches
    assert all(exe.name.startswith(name) for (_, name), exe in found.items())


def test_bench_targets_come_from_metadata_with_their_harness_and_features() -> None:
    meta = {
        "workspace_members": ["fx"],
        "packages": [
            {
                "id": "fx",
                "name": "fixture-bench",
                "manifest_path": str(FIXTURE / "Cargo.toml"),
                "targets": [
                    {
                        "name": "fixture_bench",
                        "kind": ["lib"],
                        "src_path": str(FIXTURE / "src/lib.rs"),
                    },
                    *(
                        {
                            "name": n,
                            "kind": ["bench"],
                            "src_path": str(FIXTURE / f"benches/{n}.rs"),
                            "required-features": ["extra"] if n == "gated" else None,
                        }
                        for n in ("wall", "gated", "instructions")
                    ),
                ],
            },
            {"id": "dep", "name": "criterion", "manifest_path": "/x/Cargo.toml", "targets": []},
        ],
    }
    found = {t.name: t for t in targets.bench_targets(meta)}
    assert sorted(found) == ["gated", "instructions", "wall"]
    assert found["wall"].harness == targets.CRITERION
    assert found["instructions"].harness == targets.GUNGRAUN
    assert found["gated"].required_features == ("extra",)
    args = targets.build_args(list(found.values()))
    assert args[:3] == ["bench", "--no-run", "--message-format=json-render-diagnostics"]
    assert args[args.index("--features") + 1] == "fixture-bench/extra"
    assert args[args.index("gated") - 1 : args.index("gated") + 1] == ["--bench", "gated"]
    assert "--lib" not in args and "--benches" not in args  # never the lib's test harness


@pytest.mark.parametrize(
    ("source", "harness"),
    [
        ("criterion_group!(b, f);\ncriterion_main!(b);", targets.CRITERION),
        ("use gungraun::prelude::*;\nmain!(library_benchmark_groups = g);", targets.GUNGRAUN),
        ("use iai_callgrind::main;", targets.GUNGRAUN),
        ('fn main() { println!("custom") }', targets.OTHER),
    ],
)
def test_the_harness_is_read_from_the_source(source: str, harness: str) -> None:
    assert targets.classify_source(source) == harness


def test_gungraun_version_is_read_from_the_lock_file() -> None:
    lock = (FIXTURE / "Cargo.lock").read_text()
    assert targets.gungraun_version(lock) == "0.20.0"
    assert targets.gungraun_version("[[package]]\nname = 'x'\n") is None
    assert targets.gungraun_version("not toml [") is None
