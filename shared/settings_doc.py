"""Renders the settings reference (docs/settings.md) from the Settings class, so it cannot drift.

`python -m shared.settings_doc > docs/settings.md`; a test fails when the file is out of date.
"""

from __future__ import annotations

from shared.settings import Settings


def render() -> str:
    lines = [
        "# Settings",
        "",
        "Every setting is an environment variable; the API, the workers and the local stack read the same ones.",
        "Generated from `shared/settings.py` by `python -m shared.settings_doc > docs/settings.md`.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(empty)" if default in ("", None) else f"`{default}`"
        description = " ".join((field.description or "").split()).replace("|", "\\|")
        lines.append(f"| `NARRATE_{name.upper()}` | {shown} | {description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
