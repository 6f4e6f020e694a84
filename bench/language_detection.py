"""Language detection of a 20,000-line sheet (half English, half Spanish game lines) and Spanish normalisation.

Times `detect_languages` over the sheet among English and Spanish (what the plan unit does for a sheet
without `language`), the first call's model loading apart, counts the lines given the wrong language,
and times `normalize(..., "es")` over the Spanish lines. Prints the figures and writes
bench/results/language_detection.json with the machine. Run: .venv/bin/python bench/language_detection.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.text.detect import detect_languages  # noqa: E402
from shared.text.normalize import normalize  # noqa: E402

ENGLISH = [
    "Halt! Who goes there?",
    "Potions, scrolls, rope! Fifty feet of rope for only 3 gold coins.",
    "The bridge is out. We'll have to find another way across the river.",
    "I told you not to trust the merchant.",
    "Stay close, and keep your torch lit.",
    "Thank you, traveller. The village owes you a great debt.",
    "Is that all you have? Come back when you're stronger.",
    "The king wants to see you at once.",
]
SPANISH = [
    "¡Alto! ¿Quién anda ahí?",
    "¡Pociones, pergaminos, cuerda! Quince metros de cuerda por solo 3 monedas de oro.",
    "El puente está roto. Tendremos que cruzar el río por otro sitio.",
    "Te dije que no te fiaras del mercader.",
    "No te alejes y mantén la antorcha encendida.",
    "Gracias, viajero. El pueblo tiene una gran deuda contigo.",
    "¿Eso es todo lo que tienes? Vuelve cuando seas más fuerte.",
    "El Sr. García pagó 1.234,56 € el 25/12/2023 a las 14:30.",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20_000)
    args = parser.parse_args()
    lines = [(ENGLISH if i % 2 == 0 else SPANISH)[(i // 2) % 8] + f" ({i})" for i in range(args.lines)]
    truth = ["en" if i % 2 == 0 else "es" for i in range(args.lines)]

    started = time.perf_counter()
    detect_languages(["Warm up: loading the models.", "Cargando los modelos."], ["en", "es"])
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    found = detect_languages(lines, ["en", "es"])
    detect_s = time.perf_counter() - started
    wrong = sum(1 for got, want in zip(found, truth, strict=True) if got != want)
    spanish = [line for line, want in zip(lines, truth, strict=True) if want == "es"]
    started = time.perf_counter()
    for line in spanish:
        normalize(line, "es")
    normalize_s = time.perf_counter() - started
    result = {
        "benchmark": "language_detection",
        "lines": args.lines,
        "model_load_seconds": round(load_s, 3),
        "detect_seconds": round(detect_s, 3),
        "lines_per_second": round(args.lines / detect_s),
        "wrong_language": wrong,
        "spanish_normalize_seconds": round(normalize_s, 3),
        "spanish_lines": len(spanish),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    print(
        f"{args.lines:,} lines: detection {detect_s:.2f} s ({args.lines / detect_s:,.0f} lines/s, models loaded in "
        f"{load_s:.2f} s), {wrong} given the wrong language; Spanish normalisation of {len(spanish):,} lines "
        f"{normalize_s:.2f} s; peak RSS {result['peak_rss_mib']} MiB"
    )
    out = ROOT / "bench" / "results" / "language_detection.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
