"""Helpers of the security stage: advisory database handling, cargo-audit / cargo-deny
report parsing, secret scanning and the SARIF writer. Each module is pure where it can be,
so it is unit-tested without running the tools."""
