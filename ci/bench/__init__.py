"""The benchmark stage's library: criterion and gungraun output readers (criterion.py,
gungraun.py), statistics (stats.py), verdicts and targets (compare.py), bench discovery
and builds (targets.py, measure.py), the interleaved schedule (session.py), the base
worktree (worktree.py), reports (render.py), history (record.py, chart.py) and the
invoke tasks (tasks.py). The stage itself is ci/stages/bench.py."""
