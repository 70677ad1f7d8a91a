"""The production rollout: blue/green with a weighted traffic shift (10% -> 50% -> 100%
by default), live metric analysis, automated rollback in seconds, two approvals by two
authenticated people (approvals.py: SSH signatures checked against deploy/approvers, or
this Actions run's environment reviews; sign_off.py runs them) and incident reports.
`invoke deploy.production` (deploy/rollout/tasks.py) drives it.

One controller (controller.py) runs the same steps whatever carries the traffic;
a `backend.Backend` does the moving:

- `haproxy_backend.SingleHost`: blue and green containers on one host (docker SDK, the
  image the staging flow pushed), HAProxy in front, weights set through HAProxy's
  runtime API socket (no reload; open connections untouched), per-colour metrics from
  HAProxy's `show stat` and each colour's `/metrics`;
- `k8s.Kubernetes`: a Deployment and a Service per colour and a Gateway API HTTPRoute
  whose backend weights split the traffic (deploy/k8s/), through kubectl.

The decisions are pure functions tested without any of it: analysis.py (rolling-window
triggers, inconclusive windows, the relative checks), stats.py (Mann-Whitney U,
Fisher's exact test, the exact binomial tail), metrics.py (Prometheus text and HAProxy
CSV into samples), state.py (what a rerun does after a controller died).
"""
