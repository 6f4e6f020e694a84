#!/usr/bin/env bash
# Debian packages the tests drive: chromium and chromium-driver (the web page, tests/web/), prometheus
# (its promtool checks the alert rules, tests/deploy/), espeak-ng (the preview engine's Spanish voice,
# tests/worker/test_languages.py) and a Java runtime (EPUBCheck validates the read-along books,
# tests/worker/test_alignment.py). Installs only what is missing; a no-op afterwards.
set -euo pipefail

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v promtool >/dev/null || missing+=(prometheus)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v java >/dev/null || missing+=(default-jre-headless)
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=()
[[ $(id -u) -eq 0 ]] || SUDO=(sudo)
echo "setup: installing ${missing[*]} (apt)" >&2
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
