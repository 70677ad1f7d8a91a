"""`invoke release --tag vX.Y.Z`: the release flow, one module per concern, in the order
it runs.

version   the tag (semantic version, pre-release) and the crate that owns the binary
repo      git facts: HEAD, the tag's commit, a dirty tree, the commit time
build     `cargo auditable build --release --locked`, stripped, for one target
package   reproducible archives: the layout and the per-platform format table
          (tarball: tar.gz for Linux/macOS, zipball: zip for Windows)
checksums SHA256SUMS
retry     bounded exponential backoff with an injected clock and sleep
github    the GitHub REST client (releases and assets)
publish   converge the GitHub release to the local assets, then verify it
manifest  the release manifest the deploy flows promote from (build once, promote)
flow      plan -> show -> act -> verify, with --dry-run
tasks     the invoke task
"""
