"""Draws the Grafana dashboard's layout from its JSON (deploy/grafana/dashboards/narrate.json) into
docs/images/dashboard-layout.png: each panel where its gridPos puts it, with its title, unit and the
series its queries draw. For the README where no Grafana runs; headless Chromium renders the picture.

    .venv/bin/python scripts/draw_dashboard_layout.py
"""

from __future__ import annotations

import html
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "narrate.json"
OUT = REPO / "docs" / "images" / "dashboard-layout.png"
ROW_PX = 30  # Grafana's height of one grid unit
WIDTH_PX = 1400


def page(dashboard: dict) -> str:
    cells = []
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        area = f"grid-column: {pos['x'] + 1} / span {pos['w']}; grid-row: {pos['y'] + 1} / span {pos['h']};"
        if panel["type"] == "row":
            cells.append(f'<div class="row" style="{area}">{html.escape(panel["title"])}</div>')
            continue
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        series = "".join(
            f"<li><b>{html.escape(t.get('legendFormat') or t['refId'])}</b><code>{html.escape(t['expr'])}</code></li>"
            for t in panel["targets"]
        )
        cells.append(
            f'<div class="panel" style="{area}"><h2>{html.escape(panel["title"])}'
            f"<span>{html.escape(panel['type'])} · {html.escape(unit)}</span></h2><ul>{series}</ul></div>"
        )
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    return f"""<!doctype html><meta charset="utf-8"><style>
body {{ margin: 0; padding: 16px; background: #111217; color: #ccccdc; font: 13px sans-serif; width: {WIDTH_PX}px; }}
h1 {{ font-size: 18px; margin: 0 0 4px; color: #fff; }} p {{ margin: 0 0 12px; color: #8e8e9e; }}
.grid {{ display: grid; grid-template-columns: repeat(24, 1fr); grid-template-rows: repeat({rows}, {ROW_PX}px);
  gap: 6px; }}
.row {{ font-weight: bold; font-size: 15px; color: #fff; align-self: end; border-bottom: 1px solid #2c3235; }}
.panel {{ background: #181b1f; border: 1px solid #2c3235; border-radius: 3px; padding: 6px 8px; overflow: hidden; }}
h2 {{ font-size: 14px; margin: 0 0 6px; color: #fff; display: flex; justify-content: space-between; }}
h2 span {{ font-weight: normal; color: #8e8e9e; font-size: 12px; }}
ul {{ list-style: none; margin: 0; padding: 0; }} li {{ margin: 0 0 5px; }}
li b {{ display: block; color: #73bf69; font-weight: normal; }}
code {{ font-size: 11px; color: #9fa7b3; word-break: break-all; }}
</style><h1>{html.escape(dashboard["title"])} (layout drawn from {DASHBOARD.name})</h1>
<p>{html.escape(dashboard.get("description", ""))}</p><div class="grid">{"".join(cells)}</div>"""


def main() -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        print("needs chromium and chromium-driver: bash scripts/setup_test_tools.sh", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layout.html"
        path.write_text(page(json.loads(DASHBOARD.read_text())))
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars"):
            options.add_argument(argument)
        browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
        try:
            browser.set_window_size(WIDTH_PX + 32, 800)
            browser.get(path.as_uri())
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.set_window_size(WIDTH_PX + 32, height + 120)  # the window includes some browser chrome
            OUT.parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(OUT))
        finally:
            browser.quit()
    print(OUT.relative_to(REPO))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
