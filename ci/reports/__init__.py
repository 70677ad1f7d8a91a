"""Reports rendered from the stages' result files (and, for trends, the history store):
the PR comment, the HTML report with its charts, and the specification's success metrics.
The terminal gate table and `summary.md` are in ci/report.py."""
