"""The web page at `/` in headless Chromium against the real stack: enter the key, narrate a text and
watch its bar reach 100 %, play and download the result, delete it; clone a voice with the consent
statement and play its preview. Each page is saved as a screenshot (the folder is printed)."""

from __future__ import annotations

import hashlib
import io
import time

import pytest
import requests
import soundfile as sf

from shared.settings import DEV_KEY
from tests.conftest import AUTH
from tests.worker.test_cloning import wav

pytestmark = pytest.mark.slow

TEXT = "The storm passed before dawn.\n\nBirds sang in the old oak."
"""Two paragraphs: two chunks, so the bar has a step between 0 and 100 %."""


def wait_until(browser, script: str, *args, timeout: float = 120.0, message: str = ""):
    """Polls a JavaScript expression in the page until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.execute_script(script, *args)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message or script}")


def screenshot(browser, path) -> None:
    """The whole page, not only the window: the window is grown to the page's height for the picture."""
    width, height = browser.get_window_size()["width"], browser.get_window_size()["height"]
    full = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, max(height, full + 120))
    browser.save_screenshot(str(path))
    browser.set_window_size(width, height)


def by_id(browser, element_id: str):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id)


def test_narrate_listen_download_delete_and_clone_a_voice(web_stack, browser, artifacts, speech, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    browser.get(f"{web_stack.url}/")
    screenshot(browser, artifacts / "01-key.png")
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')]"
        ".filter(e => !e.labels || e.labels.length === 0).map(e => e.id)"
    )
    assert unlabelled == []

    # A wrong key is refused by the API and the page says so; the right one is kept for the tab.
    by_id(browser, "key-input").send_keys("not-a-key" + Keys.ENTER)
    wait_until(browser, "return document.getElementById('alert').textContent", message="the 401 alert")
    assert "not valid" in by_id(browser, "alert").text
    by_id(browser, "key-input").send_keys(DEV_KEY + Keys.ENTER)
    wait_until(browser, "return !document.getElementById('key-set').hidden", message="the key to be used")
    assert browser.execute_script("return sessionStorage.getItem('narrate.apiKey')") == DEV_KEY
    wait_until(browser, "return document.getElementById('job-format').options.length > 0", message="formats")

    # Submit a text from a .txt file in MP3, by keyboard.
    text_file = tmp_path / "chapter.txt"
    text_file.write_text(TEXT)
    by_id(browser, "job-file").send_keys(str(text_file))
    wait_until(browser, "return document.getElementById('job-text').value.length > 0", message="the file's text")
    assert by_id(browser, "job-text").get_attribute("value") == TEXT
    Select(by_id(browser, "job-format")).select_by_value("mp3")
    by_id(browser, "job-submit").send_keys(Keys.ENTER)
    card = wait_until(browser, "return document.querySelector('#job-list li.job')", message="the job's card")
    job_id = card.get_attribute("data-job-id")

    seen: list[float] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        value, status = browser.execute_script(
            "const c = arguments[0]; "
            "return [c.querySelector('progress').value, c.querySelector('.status').textContent]",
            card,
        )
        if not seen or seen[-1] != value:
            seen.append(value)
            if 0 < value < 100 and not (artifacts / "02-jobs-running.png").exists():
                screenshot(browser, artifacts / "02-jobs-running.png")
        if status in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.1)
    assert status == "succeeded", card.text
    assert seen[-1] == 100 and seen == sorted(seen)  # the bar only moves forward, to 100 %
    job = requests.get(f"{web_stack.url}/v1/jobs/{job_id}", headers=AUTH, timeout=10).json()
    assert f"RTF {job['rtf']:.3f}" in card.text
    assert job["metadata"]["title"] == "chapter.txt" and "chapter.txt" in card.text

    # The audio element on the result link reports the file's duration, and plays.
    audio = card.find_element(By.TAG_NAME, "audio")
    duration = wait_until(
        browser, "return arguments[0].readyState >= 1 && arguments[0].duration", audio, message="audio metadata"
    )
    assert duration == pytest.approx(job["result"]["duration_seconds"], abs=0.15)
    browser.execute_script("arguments[0].play()", audio)
    wait_until(browser, "return arguments[0].currentTime > 0", audio, timeout=30, message="playback")
    browser.execute_script("arguments[0].pause()", audio)
    screenshot(browser, artifacts / "02-jobs.png")

    # The download links are the job's: the audio file (its sha256) and the subtitles.
    links = {a.text: a.get_attribute("href") for a in card.find_elements(By.CSS_SELECTOR, ".actions a")}
    audio_bytes = requests.get(links["Download mp3"], timeout=10).content
    assert hashlib.sha256(audio_bytes).hexdigest() == job["result"]["sha256"]
    srt = requests.get(links["Subtitles (SRT)"], timeout=10).text
    assert "-->" in srt and "storm" in srt

    # A phone's width: nothing scrolls sideways.
    browser.set_window_size(390, 844)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(browser, artifacts / "03-jobs-phone.png")
    browser.set_window_size(1280, 1100)

    # Delete: the card goes, and so does the job.
    card.find_element(By.XPATH, ".//button[text()='Delete']").click()
    gone = "return document.querySelector(`#job-list li[data-job-id='${arguments[0]}']`) === null"
    wait_until(browser, gone, job_id, message="the card to go")
    assert requests.get(f"{web_stack.url}/v1/jobs/{job_id}", headers=AUTH, timeout=10).status_code == 404

    # Cancel: a long text, canceled from its card while it runs, ends canceled.
    by_id(browser, "job-file").clear()
    by_id(browser, "job-text").clear()
    by_id(browser, "job-text").send_keys(" ".join([TEXT] * 60))
    by_id(browser, "job-submit").click()
    running = wait_until(browser, "return document.querySelector('#job-list li.job')", message="the long job's card")
    long_id = running.get_attribute("data-job-id")
    running.find_element(By.XPATH, ".//button[text()='Cancel']").click()
    canceled = "return document.querySelector(`#job-list li[data-job-id='${arguments[0]}'] .status`).textContent"
    wait_until(browser, canceled + " === 'canceled'", long_id, timeout=60, message="the job to be canceled")
    assert requests.get(f"{web_stack.url}/v1/jobs/{long_id}", headers=AUTH, timeout=10).json()["status"] == "canceled"

    # Voices: upload a clip with the consent statement, wait for it to be cloned, play the preview.
    by_id(browser, "nav-voices").click()
    wait_until(browser, "return !document.getElementById('voices-page').hidden", message="the voices page")
    assert browser.execute_script("return document.activeElement.id") == "voices-heading"  # reading starts there
    clip = tmp_path / "jane.wav"
    clip.write_bytes(wav(*speech))
    by_id(browser, "voice-name").send_keys("Jane")
    by_id(browser, "voice-files").send_keys(str(clip))
    by_id(browser, "voice-consent-by").send_keys("Jane Doe, recorded 2026-11-01")
    by_id(browser, "voice-submit").click()
    # The consent box is required: the browser holds the form back until it is ticked.
    assert browser.execute_script("return document.querySelector('#voice-list li') === null")
    by_id(browser, "voice-consent").click()
    by_id(browser, "voice-submit").click()
    cloned = (
        "return [...document.querySelectorAll('#voice-list li')]"
        ".find(li => li.querySelector('.status').textContent !== 'processing')"
    )
    voice = wait_until(browser, cloned, timeout=180, message="the voice to be cloned")
    assert "ready" in voice.text and "Jane Doe, recorded 2026-11-01" in voice.text
    preview = voice.find_element(By.TAG_NAME, "audio")
    wait_until(browser, "return arguments[0].readyState >= 1 && arguments[0].duration > 0", preview, message="preview")
    browser.execute_script("arguments[0].play()", preview)
    wait_until(browser, "return arguments[0].currentTime > 0", preview, timeout=30, message="preview playback")
    browser.execute_script("arguments[0].pause()", preview)
    screenshot(browser, artifacts / "04-voices.png")
    voice_id = voice.get_attribute("data-voice-id")
    stored = requests.get(f"{web_stack.url}/v1/voices/{voice_id}", headers=AUTH, timeout=10).json()
    assert stored["consent"]["by"] == "Jane Doe, recorded 2026-11-01"
    preview_audio, _ = sf.read(io.BytesIO(requests.get(stored["preview_url"], timeout=10).content))
    assert len(preview_audio) > 0

    # The cloned voice is offered for the next job.
    by_id(browser, "nav-jobs").click()
    options = [o.get_attribute("value") for o in Select(by_id(browser, "job-voice")).options]
    assert voice_id in options
