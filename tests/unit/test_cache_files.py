"""`workspace_files`: which files name a workspace, decided from what git answers. The
answers are git's own output, recorded from real repositories (tests/e2e/
test_cache_battery.py runs the same cases against real git); a None answer is git
failing (an error exit or its timeout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ci.cache import files as files_mod
from ci.cache.files import blob_id, workspace_files
from ci.cache.inputs import files_digest


class Recorded:
    """git's answers by (folder, subcommand flags); the calls made are kept."""

    def __init__(self, answers: dict[tuple[Path, str], bytes | None]) -> None:
        self.answers = answers
        self.calls: list[tuple[Path, tuple[str, ...]]] = []

    def __call__(self, root: Path, *args: str) -> bytes | None:
        self.calls.append((root, args))
        flags = " ".join(a for a in args if a not in ("ls-files", "-z"))
        return self.answers.get((root.resolve(), flags), b"")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_blob_ids_are_gits_own() -> None:
    # `echo hi | git hash-object --stdin`
    assert blob_id(b"hi\n") == "45b983be36b73c0788dc9cbcb76cbb80fc7bb057"


def test_a_workspace_ignored_by_an_outer_repository_is_hashed_from_disk(tmp_path: Path) -> None:
    """#1: inside an outer repository that ignores everything, `ls-files` lists nothing
    and `--others --ignored --directory` answers `./`: every file is read from disk."""
    (tmp_path / ".git").mkdir()  # the outer repository
    ws = tmp_path / "home" / "proj"
    write(ws / "src" / "lib.rs", "pub fn a() {}\n")
    git = Recorded({(ws, "-o -i --exclude-standard --directory"): b"./\0"})
    before = workspace_files(ws, git=git)
    assert before.ids == {"src/lib.rs": "git:100644:" + blob_id(b"pub fn a() {}\n")}
    write(ws / "src" / "lib.rs", "pub fn a() { panic!() }\n")
    assert files_digest(workspace_files(ws, git=git).ids) != files_digest(before.ids)


@pytest.mark.parametrize("failing", ["-s", "-m -d", "-o --exclude-standard"])
def test_a_failing_git_never_drops_edits(tmp_path: Path, failing: str) -> None:
    """#2: a git listing that fails (an error or its timeout) is never taken as "nothing
    changed": every file is hashed from disk instead."""
    (tmp_path / ".git").mkdir()
    lib = write(tmp_path / "src" / "lib.rs", "v1\n")
    tracked = b"100644 " + blob_id(b"v1\n").encode() + b" 0\tsrc/lib.rs\0"
    answers: dict[tuple[Path, str], bytes | None] = {(tmp_path, "-s"): tracked}
    answers[(tmp_path, failing)] = None
    git = Recorded(answers)
    before = files_digest(workspace_files(tmp_path, git=git).ids)
    lib.write_text("v2\n")
    write(tmp_path / "src" / "new.rs", "new\n")
    after = workspace_files(tmp_path, git=git).ids
    assert files_digest(after) != before
    assert after["src/new.rs"] == "git:100644:" + blob_id(b"new\n")


def test_nested_repositories_and_dirty_submodules_are_hashed_by_content(tmp_path: Path) -> None:
    """#4: a nested repository (listed as `nested/` among the untracked) and a submodule
    (a gitlink, mode 160000) are named by their files, dirty ones included."""
    (tmp_path / ".git").mkdir()
    nested, sub = tmp_path / "nested", tmp_path / "sub"
    (nested / ".git").mkdir(parents=True)
    write(nested / "f.rs", "n1\n")
    write(sub / ".git", "gitdir: ../.git/modules/sub\n")
    write(sub / "f.rs", "s1\n")
    git = Recorded(
        {
            (tmp_path, "-s"): b"160000 978a86873b1af6f7c7aada9e4d380f01a50f4815 0\tsub\0",
            (tmp_path, "-o --exclude-standard"): b"nested/\0",
            (nested, "-o --exclude-standard"): b"f.rs\0",
            (sub, "-s"): b"100644 " + blob_id(b"s1\n").encode() + b" 0\tf.rs\0",
            (sub, "-m -d"): b"f.rs\0",  # git reports the submodule's own file dirty
        }
    )
    first = workspace_files(tmp_path, git=git).ids
    assert first["sub"].startswith("tree:") and first["nested"].startswith("tree:")
    (sub / "f.rs").write_text("s2\n")  # a dirty submodule
    second = workspace_files(tmp_path, git=git).ids
    assert second["sub"] != first["sub"]
    (nested / "f.rs").write_text("n2\n")
    assert workspace_files(tmp_path, git=git).ids["nested"] != second["nested"]


def test_ignored_files_are_inputs_except_tool_caches_and_target_dirs(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path / ".env", "MODE=a\n")
    write(tmp_path / "target" / "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55")
    write(tmp_path / "target" / "debug" / "x", "build output")
    write(tmp_path / ".nox" / "lint" / "bin" / "python", "venv")
    write(tmp_path / "out" / "lint.json", "{}")
    ignored = b".env\0target/\0.nox/\0out/\0"
    git = Recorded({(tmp_path, "-o -i --exclude-standard --directory"): ignored})
    ids = workspace_files(tmp_path, [tmp_path / "out"], [".nox"], git=git).ids
    assert list(ids) == [".env"]


def test_symlinks_are_named_by_what_they_point_at(tmp_path: Path) -> None:
    (tmp_path / "ws" / ".git").mkdir(parents=True)
    outside = write(tmp_path / "data.txt", "1\n")
    (tmp_path / "ws" / "data").symlink_to(outside)
    git = Recorded(
        {(tmp_path / "ws", "-s"): b"120000 1111111111111111111111111111111111111111 0\tdata\0"}
    )
    before = workspace_files(tmp_path / "ws", git=git).ids["data"]
    outside.write_text("2\n")
    assert workspace_files(tmp_path / "ws", git=git).ids["data"] != before


def test_a_touched_file_keeps_its_id_and_a_mode_change_does_not(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    lib = write(tmp_path / "lib.rs", "same\n")
    tracked = b"100644 " + blob_id(b"same\n").encode() + b" 0\tlib.rs\0"
    clean = Recorded({(tmp_path, "-s"): tracked})
    touched = Recorded({(tmp_path, "-s"): tracked, (tmp_path, "-m -d"): b"lib.rs\0"})
    assert workspace_files(tmp_path, git=clean).ids == workspace_files(tmp_path, git=touched).ids
    lib.chmod(0o755)
    assert workspace_files(tmp_path, git=touched).ids["lib.rs"].startswith("git:100755:")


def test_too_much_to_hash_is_not_cacheable_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files_mod, "MAX_HASHED_FILES", 3)
    for i in range(5):
        write(tmp_path / "data" / f"{i}.bin", str(i))
    listing = workspace_files(tmp_path)  # no repository: every file from disk
    assert listing.reason and "not_inputs" in listing.reason


def test_outside_git_every_file_is_hashed_but_git_dirs_and_target_dirs(tmp_path: Path) -> None:
    write(tmp_path / "src" / "lib.rs", "x")
    write(tmp_path / "nested" / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(tmp_path / "target" / "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55")
    write(tmp_path / "target" / "debug" / "x", "y")
    ids = workspace_files(tmp_path).ids
    assert sorted(ids) == ["src/lib.rs"]
    os.symlink(tmp_path / "src", tmp_path / "linked")
    assert workspace_files(tmp_path).ids["linked"].startswith("link:")
