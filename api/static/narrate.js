// narrate's page: the /v1 API from the browser. No framework, no build step: the DOM is built with
// textContent only (job and voice fields are user data), and every call sends the tab's key.
"use strict";

const KEY_STORAGE = "narrate.apiKey";
const POLL_ACTIVE_MS = 1000;
const POLL_IDLE_MS = 10000;
const ACTIVE = new Set(["queued", "running"]);

const $ = (id) => document.getElementById(id);

class ApiFailure extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  headers.set("Authorization", `Bearer ${apiKey() || ""}`);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    throw new ApiFailure(0, "network", "The API could not be reached.");
  }
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (body && body.error) || {};
    throw new ApiFailure(response.status, error.code || "http_error",
      error.message || `The API answered ${response.status}.`, error.field);
  }
  return body;
}

function showAlert(message) {
  const alert = $("alert");
  alert.textContent = message;
  alert.hidden = !message;
}

function reportFailure(err, target) {
  if (err instanceof ApiFailure && err.status === 401) {
    forgetKey();
    showAlert(`${err.message} Enter a valid API key.`);
    return;
  }
  const message = err instanceof ApiFailure ? err.message : String(err);
  if (target) target.textContent = message;
  else showAlert(message);
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// --- the key -------------------------------------------------------------------------------------

function showKeyState() {
  const key = apiKey();
  $("key-form").hidden = Boolean(key);
  $("key-set").hidden = !key;
  $("key-tail").textContent = key ? `…${key.slice(-4)}` : "";
  for (const id of ["job-submit", "voice-submit"]) $(id).disabled = !key;
}

function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  jobCards.clear();
  $("job-list").replaceChildren();
  $("voice-list").replaceChildren();
  showKeyState();
  $("key-input").focus();
}

function useKey(event) {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  $("key-input").value = "";
  showAlert("");
  showKeyState();
  refreshAll();
}

// --- pages ---------------------------------------------------------------------------------------

function showPage(event) {
  const page = location.hash === "#voices" ? "voices" : "jobs";
  $("jobs-page").hidden = page !== "jobs";
  $("voices-page").hidden = page !== "voices";
  for (const name of ["jobs", "voices"]) {
    const link = $(`nav-${name}`);
    if (name === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = page === "voices" ? "Voices · narrate" : "Jobs · narrate";
  // Moving between pages by keyboard or screen reader: start reading at the new page's heading.
  if (event) $(page === "voices" ? "voices-heading" : "jobs-heading").focus();
}

// --- formats and voices for the job form ---------------------------------------------------------

async function loadFormats() {
  // The API's own document names the formats (one list, the server's), and needs no key.
  const response = await fetch("/openapi.json");
  const doc = await response.json();
  const schemas = doc.components.schemas;
  const formats = schemas.AudioFormat.enum;
  const fallback = schemas.JobCreate.properties.format.default;
  const select = $("job-format");
  select.replaceChildren(...formats.map((f) => el("option", { value: f, text: f })));
  select.value = fallback;
}

let voiceList = null;

async function loadVoices() {
  voiceList = await api("/v1/voices");
  const select = $("job-voice");
  const chosen = select.value;
  const builtin = voiceList.builtin.map((v) =>
    el("option", { value: v.id, text: v.description ? `${v.id} — ${v.description}` : v.id }));
  const cloned = voiceList.data.filter((v) => v.status === "ready")
    .map((v) => el("option", { value: v.id, text: `${v.name} (cloned)` }));
  select.replaceChildren(
    el("option", { value: "", text: `Default voice (${voiceList.engine})` }),
    builtin.length ? el("optgroup", { label: "Built-in" }, ...builtin) : null,
    cloned.length ? el("optgroup", { label: "Cloned" }, ...cloned) : null,
  );
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  renderVoices();
}

// --- jobs ----------------------------------------------------------------------------------------

async function readTextFile() {
  const file = $("job-file").files[0];
  if (!file) return;
  if (!/\.(txt|md)$/i.test(file.name)) {
    $("job-message").textContent = `${file.name}: pick a .txt or .md file.`;
    $("job-file").value = "";
    return;
  }
  $("job-text").value = await file.text();
  $("job-message").textContent = `Read ${file.name} (${$("job-text").value.length} characters).`;
}

async function submitJob(event) {
  event.preventDefault();
  const message = $("job-message");
  const text = $("job-text").value;
  if (!text.trim()) {
    message.textContent = "Enter a text or pick a file first.";
    $("job-text").focus();
    return;
  }
  const file = $("job-file").files[0];
  const title = file ? file.name : text.trim().split(/\s+/).slice(0, 8).join(" ").slice(0, 80);
  const body = { inputs: [{ text }], format: $("job-format").value, metadata: { title } };
  if ($("job-voice").value) body.voice = $("job-voice").value;
  $("job-submit").disabled = true;
  message.textContent = "Submitting…";
  try {
    const job = await api("/v1/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    message.textContent = `Job ${job.id} queued.`;
    upsertJob(job, true);
    schedulePoll(POLL_ACTIVE_MS);
  } catch (err) {
    reportFailure(err, message);
  } finally {
    $("job-submit").disabled = !apiKey();
  }
}

const jobCards = new Map();

function upsertJob(job, first = false) {
  let card = jobCards.get(job.id);
  if (!card) {
    card = buildJobCard(job);
    jobCards.set(job.id, card);
    const list = $("job-list");
    if (first) list.prepend(card.root);
    else list.append(card.root);
  }
  updateJobCard(card, job);
  $("jobs-empty").hidden = jobCards.size > 0;
}

function buildJobCard(job) {
  const title = (job.metadata && job.metadata.title) || job.id;
  const headingId = `job-${job.id}-title`;
  const card = {
    status: el("span", { class: "status" }),
    percent: el("span"),
    rtf: el("span"),
    detail: el("span"),
    progress: el("progress", { max: "100", value: "0", "aria-labelledby": headingId }),
    player: el("div"),
    actions: el("div", { class: "actions" }),
    error: el("p", { class: "help" }),
    shownActions: "",
  };
  card.root = el("li", { class: "card job", "data-job-id": job.id, "aria-labelledby": headingId },
    el("h3", { id: headingId, text: title }),
    el("div", { class: "meta" }, card.status, card.percent, card.rtf, card.detail),
    card.progress, card.error, card.player, card.actions);
  return card;
}

function updateJobCard(card, job) {
  const percent = job.status === "succeeded" ? 100 : Math.floor(job.progress.percent);
  card.status.textContent = job.status;
  card.status.className = `status ${job.status}`;
  card.progress.value = percent;
  card.progress.textContent = `${percent} %`;
  card.percent.textContent = `${percent} %`;
  card.rtf.textContent = job.rtf == null ? "" : `RTF ${job.rtf.toFixed(3)}`;
  const p = job.progress;
  card.detail.textContent = p.chunks_total ? `${p.chunks_done}/${p.chunks_total} chunks, ${p.audio_seconds.toFixed(1)} s` : "";
  card.error.textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";
  if (job.status === "succeeded" && job.result && !card.audio) {
    card.audio = el("audio", { controls: "", preload: "metadata", src: job.result.url,
      "aria-label": `Listen to ${card.root.querySelector("h3").textContent}` });
    card.player.replaceChildren(card.audio);
  }
  const wanted = `${job.status}`;
  if (card.shownActions !== wanted) {
    card.shownActions = wanted;
    card.actions.replaceChildren(...jobActions(job));
  }
}

function jobActions(job) {
  const actions = [];
  if (job.result) {
    actions.push(el("a", { href: job.result.url, download: job.result.filename, text: `Download ${job.format}` }));
    const subs = job.result.subtitles || {};
    for (const [kind, label] of [["srt", "SRT"], ["vtt", "WebVTT"], ["timing", "timing JSON"]]) {
      if (subs[kind]) actions.push(el("a", { href: subs[kind], download: "", text: `Subtitles (${label})` }));
    }
  }
  if (ACTIVE.has(job.status)) {
    actions.push(el("button", { type: "button", class: "secondary", text: "Cancel",
      onclick: () => jobAction(job.id, "cancel") }));
  } else {
    actions.push(el("button", { type: "button", class: "danger", text: "Delete",
      onclick: () => jobAction(job.id, "delete") }));
  }
  return actions;
}

async function jobAction(id, what) {
  try {
    if (what === "cancel") {
      upsertJob(await api(`/v1/jobs/${id}/cancel`, { method: "POST" }));
    } else {
      await api(`/v1/jobs/${id}`, { method: "DELETE" });
      const card = jobCards.get(id);
      if (card) card.root.remove();
      jobCards.delete(id);
      $("jobs-empty").hidden = jobCards.size > 0;
      $("job-message").textContent = `Job ${id} deleted.`;
    }
  } catch (err) {
    reportFailure(err);
  }
}

async function loadJobs() {
  const page = await api("/v1/jobs?limit=20");
  const seen = new Set(page.data.map((job) => job.id));
  for (const [id, card] of jobCards) {
    if (!seen.has(id)) { card.root.remove(); jobCards.delete(id); }
  }
  // Newest first, as the API lists them.
  const list = $("job-list");
  for (const job of page.data) {
    upsertJob(job);
    list.append(jobCards.get(job.id).root);
  }
  $("jobs-empty").hidden = jobCards.size > 0;
  return page.data.some((job) => ACTIVE.has(job.status));
}

// --- voices --------------------------------------------------------------------------------------

function renderVoices() {
  if (!voiceList) return;
  const unsupported = $("clone-unsupported");
  unsupported.hidden = voiceList.can_clone;
  unsupported.textContent = voiceList.can_clone ? "" :
    `The workers run ${voiceList.engine}, which cannot clone voices.`;
  $("voice-submit").disabled = !voiceList.can_clone || !apiKey();
  const list = $("voice-list");
  const players = new Map([...list.querySelectorAll("audio")].map((a) => [a.dataset.voiceId, a]));
  list.replaceChildren(...voiceList.data.map((voice) => {
    const headingId = `voice-${voice.id}-title`;
    let preview = null;
    if (voice.preview_url) {
      preview = players.get(voice.id) || el("audio", { controls: "", preload: "metadata", src: voice.preview_url,
        "data-voice-id": voice.id, "aria-label": `Preview of ${voice.name}` });
    }
    return el("li", { class: "card voice", "data-voice-id": voice.id, "aria-labelledby": headingId },
      el("h3", { id: headingId, text: voice.name }),
      el("div", { class: "meta" },
        el("span", { class: `status ${voice.status}`, text: voice.status }),
        el("span", { text: voice.id }),
        voice.mix
          ? el("span", { text: `mix of ${voice.mix.map((part) => `${part.voice} (${part.weight})`).join(" + ")}` })
          : el("span", { text: `consent: ${voice.consent ? voice.consent.by : "?"}` }),
        el("span", { text: `${voice.clips.length} clip${voice.clips.length === 1 ? "" : "s"}` })),
      voice.error ? el("p", { class: "help", text: `${voice.error.code}: ${voice.error.message}` }) : null,
      preview,
      el("div", { class: "actions" },
        el("button", { type: "button", class: "danger", text: "Delete", onclick: () => deleteVoice(voice) })));
  }));
  $("voices-empty").hidden = voiceList.data.length > 0;
}

async function submitVoice(event) {
  event.preventDefault();
  const form = $("voice-form");
  const message = $("voice-message");
  const data = new FormData();
  for (const name of ["name", "description", "language", "consent_by", "consent_at"]) {
    const value = form.elements[name].value.trim();
    if (value) data.append(name, value);
  }
  for (const file of $("voice-files").files) data.append("files", file, file.name);
  $("voice-submit").disabled = true;
  message.textContent = "Uploading…";
  try {
    const voice = await api("/v1/voices", { method: "POST", body: data });
    message.textContent = `Voice ${voice.name} (${voice.id}) is being cloned.`;
    form.reset();
    await loadVoices();
    schedulePoll(POLL_ACTIVE_MS);
  } catch (err) {
    reportFailure(err, message);
  } finally {
    $("voice-submit").disabled = !apiKey() || !(voiceList && voiceList.can_clone);
  }
}

async function deleteVoice(voice) {
  if (!confirm(`Delete the voice ${voice.name}? Its clips and embedding are removed.`)) return;
  try {
    await api(`/v1/voices/${voice.id}`, { method: "DELETE" });
    $("voice-message").textContent = `Voice ${voice.name} deleted.`;
    await loadVoices();
  } catch (err) {
    reportFailure(err);
  }
}

// --- polling -------------------------------------------------------------------------------------

let pollTimer = null;

function schedulePoll(ms) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(refreshAll, ms);
}

async function refreshAll() {
  if (!apiKey()) return;
  let busy = false;
  try {
    busy = await loadJobs();
    await loadVoices();
    busy = busy || voiceList.data.some((v) => v.status === "processing");
    showAlert("");
  } catch (err) {
    reportFailure(err);
  }
  if (apiKey()) schedulePoll(busy ? POLL_ACTIVE_MS : POLL_IDLE_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", useKey);
  $("key-forget").addEventListener("click", forgetKey);
  $("job-form").addEventListener("submit", submitJob);
  $("job-file").addEventListener("change", readTextFile);
  $("voice-form").addEventListener("submit", submitVoice);
  window.addEventListener("hashchange", showPage);
  showPage(null);
  showKeyState();
  loadFormats().catch(reportFailure);
  refreshAll();
});
