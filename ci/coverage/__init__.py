"""Line coverage: the Cobertura report tarpaulin writes, the gates applied to it (total,
critical paths, drop from the baseline, changed lines), the figures kept in the history
store, the reports (table, markdown) and the Codecov upload. Everything but the stage
(ci/stages/coverage.py) and the tarpaulin runner is pure and unit-tested on data."""
