#!/usr/bin/env python3
"""Render the README's two pictures from the results of a real run: the gate table
(docs/img/gate-table.png, as `invoke ci` prints it) and the HTML report
(docs/img/report.png, `invoke report --html`), both screenshotted by headless Chromium.

    python3 scripts/bench_fresh_machine.py --keep /tmp/run      # or any invoke ci output
    python3 scripts/render_doc_images.py /tmp/run [--history /tmp/run/history.sqlite3]
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ci.registry import STAGES  # noqa: E402
from ci.report import load, table  # noqa: E402

IMG = ROOT / "docs" / "img"
TERMINAL = """<!doctype html><meta charset="utf-8"><style>
body {{ margin: 0; background: #1e1e1e; }}
pre {{ margin: 0; padding: 18px 22px; color: #d4d4d4; font: 15px/1.45 "DejaVu Sans Mono",
  monospace; white-space: pre; }}
.prompt {{ color: #6a9955; }}
</style><pre><span class="prompt">$ invoke ci</span>
{body}</pre>"""


def shoot(url: str, dest: Path, width: int, height: int) -> None:
    """A PNG of `url` at width x height, by headless Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("error: chromium not found (bash .ci/setup browser)")
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    cmd += [f"--screenshot={dest}", f"--window-size={width},{height}", url]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def main() -> int:
    """Render both pictures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("results", type=Path, help="an output folder of invoke ci")
    parser.add_argument("--history", type=Path, help="the run's history store")
    args = parser.parse_args()
    results = load(args.results, [s.name for s in STAGES])
    if not results:
        sys.exit(f"error: no stage results in {args.results}")
    IMG.mkdir(parents=True, exist_ok=True)
    text = table(results)
    lines = text.splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "gate-table.html"
        page.write_text(TERMINAL.format(body=html.escape(text)), encoding="utf-8")
        width = 60 + 9 * max(len(line) for line in lines)
        shoot(page.as_uri(), IMG / "gate-table.png", min(width, 1600), 60 + 22 * len(lines))
    env = {**os.environ, "CIPIPE_OUTPUT_DIR": str(args.results.resolve())}
    if args.history:
        env["CIPIPE_HISTORY__PATH"] = str(args.history.resolve())
    invoke = [sys.executable, "-m", "invoke", "report", "--html", "--no-step-summary"]
    subprocess.run(invoke, cwd=ROOT, env=env, check=True, capture_output=True)
    shoot((args.results / "report.html").resolve().as_uri(), IMG / "report.png", 1280, 1600)
    for name in ("gate-table.png", "report.png"):
        print(f"wrote {IMG / name} ({(IMG / name).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
