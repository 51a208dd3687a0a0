// huisclos web page: ask a question, read the answer as it is written, open its sources,
// see the index status. Served by `huisclos serve`; talks only to its own origin.
"use strict";

const STRINGS = {
  fr: {
    skip: "Aller à la question",
    tagline: "Vos documents, à huis clos : rien ne quitte cette machine.",
    language: "Langue",
    askTitle: "Poser une question",
    questionLabel: "Votre question",
    questionPlaceholder: "Quel est le montant de la dernière facture de Dupont SARL ?",
    clientLabel: "Client",
    allClients: "Tous les clients",
    askButton: "Demander",
    stopButton: "Arrêter",
    askHint:
      "Entrée pour envoyer. La réponse cite ses sources ; cliquez sur une source pour voir le passage et l'emplacement du fichier.",
    answerTitle: "Réponse",
    sourcesTitle: "Sources",
    thinking: "Recherche dans les documents…",
    stopped: "Réponse interrompue.",
    meta: "Réponse en {seconds} s · {backend} {model}",
    notFoundMeta: "Aucun document ne contient la réponse.",
    attributed: "Source attribuée par huisclos (le modèle n'en a pas indiqué).",
    location: "Emplacement du fichier",
    copy: "Copier l'emplacement",
    copied: "Copié",
    page: "page {page}",
    score: "pertinence {score}",
    passage: "Passage",
    tokenTitle: "Jeton d'accès",
    tokenHelp:
      "Ce serveur demande un jeton d'accès. Demandez-le à la personne qui administre huisclos.",
    tokenLabel: "Jeton",
    tokenSave: "Enregistrer",
    tokenRefused: "Ce jeton a été refusé. Vérifiez-le et saisissez-le à nouveau.",
    statusTitle: "État de l'index",
    documents: "Documents",
    passages: "Passages",
    clients: "Clients",
    lastUpdate: "Dernière mise à jour",
    watcher: "Surveillance des dossiers",
    failed: "Fichiers en échec",
    failuresTitle: "Fichiers qui n'ont pas pu être lus",
    noFailures: "Aucun : tous les fichiers ont été lus.",
    refresh: "Actualiser",
    never: "jamais",
    footer:
      "Les questions, les documents et les réponses restent sur cette machine. Les réponses viennent d'un modèle local : vérifiez-les dans les sources citées.",
    error: "Erreur : {message}",
    unreachable: "Le serveur huisclos ne répond pas. Est-il démarré ?",
    watcherStates: {
      starting: "démarrage",
      "catching up": "rattrapage en cours",
      running: "active",
      "waiting for a root": "en attente d'un dossier",
      stopped: "arrêtée",
      none: "non démarrée",
    },
    watcherQueue: "{state}, {queue} en attente",
    reasons: {
      "password-protected": "protégé par un mot de passe",
      "corrupt or unreadable": "corrompu ou illisible",
      "unsupported type": "type de fichier non pris en charge",
      "empty: no text found": "vide : aucun texte trouvé",
      "too large": "trop volumineux",
      "timed out": "lecture trop longue, abandonnée",
    },
  },
  en: {
    skip: "Skip to the question",
    tagline: "Your documents, behind closed doors: nothing leaves this machine.",
    language: "Language",
    askTitle: "Ask a question",
    questionLabel: "Your question",
    questionPlaceholder: "What are Acme's fees?",
    clientLabel: "Client",
    allClients: "All clients",
    askButton: "Ask",
    stopButton: "Stop",
    askHint:
      "Press Enter to send. The answer cites its sources; click a source to see the passage and where the file is.",
    answerTitle: "Answer",
    sourcesTitle: "Sources",
    thinking: "Searching the documents…",
    stopped: "Answer stopped.",
    meta: "Answered in {seconds} s · {backend} {model}",
    notFoundMeta: "No document holds the answer.",
    attributed: "Source attributed by huisclos (the model gave none).",
    location: "File location",
    copy: "Copy the location",
    copied: "Copied",
    page: "page {page}",
    score: "relevance {score}",
    passage: "Passage",
    tokenTitle: "Access token",
    tokenHelp: "This server requires an access token. Ask whoever administers huisclos.",
    tokenLabel: "Token",
    tokenSave: "Save",
    tokenRefused: "This token was refused. Check it and enter it again.",
    statusTitle: "Index status",
    documents: "Documents",
    passages: "Passages",
    clients: "Clients",
    lastUpdate: "Last update",
    watcher: "Folder watcher",
    failed: "Failed files",
    failuresTitle: "Files that could not be read",
    noFailures: "None: every file was read.",
    refresh: "Refresh",
    never: "never",
    footer:
      "Questions, documents and answers stay on this machine. Answers come from a local model: check them against the cited sources.",
    error: "Error: {message}",
    unreachable: "The huisclos server does not answer. Is it running?",
    watcherStates: {
      starting: "starting",
      "catching up": "catching up",
      running: "running",
      "waiting for a root": "waiting for a folder",
      stopped: "stopped",
      none: "not started",
    },
    watcherQueue: "{state}, {queue} queued",
    reasons: {},
  },
};

const state = {
  lang: "fr",
  status: null,
  answer: null, // the last AnswerOut
  controller: null,
};

const $ = (id) => document.getElementById(id);

function t(key, values) {
  const table = STRINGS[state.lang];
  let text = key in table ? table[key] : STRINGS.en[key];
  if (typeof text !== "string") return key;
  for (const [name, value] of Object.entries(values || {})) {
    text = text.replace(`{${name}}`, String(value));
  }
  return text;
}

function chooseLanguage() {
  const saved = localStorage.getItem("huisclos.lang");
  if (saved === "fr" || saved === "en") return saved;
  for (const tag of navigator.languages || [navigator.language || ""]) {
    const base = tag.toLowerCase().slice(0, 2);
    if (base === "fr" || base === "en") return base;
  }
  return "fr";
}

function applyLanguage(lang) {
  state.lang = lang;
  document.documentElement.lang = lang;
  $("lang").value = lang;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of document.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
  if (state.status) renderStatus(state.status);
  if (state.answer) renderAnswer(state.answer);
}

// --- talking to the server (same origin only) ---------------------------------------------

function headers(extra) {
  const result = { "X-Huisclos": "1", ...extra };
  const token = localStorage.getItem("huisclos.token");
  if (token) result.Authorization = `Bearer ${token}`;
  return result;
}

class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function failure(response) {
  let message = `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch (ignored) {
    // not JSON: keep the status line
  }
  if (response.status === 401) showTokenBox();
  return new ApiFailure(response.status, message);
}

async function getJSON(path) {
  const response = await fetch(path, { headers: headers(), cache: "no-store" });
  if (!response.ok) throw await failure(response);
  return response.json();
}

function showTokenBox() {
  const box = $("token-box");
  const refused = Boolean(localStorage.getItem("huisclos.token"));
  $("token-refused").hidden = !refused;
  if (box.hidden) {
    box.hidden = false;
    $("token").focus();
  }
}

function showError(error) {
  const box = $("error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  if (error instanceof ApiFailure && error.status === 401) return; // the token box says it
  const message = error instanceof ApiFailure ? error.message : t("unreachable");
  box.textContent = t("error", { message });
  box.hidden = false;
}

// --- status and clients --------------------------------------------------------------------

function formatTime(seconds) {
  if (!seconds) return t("never");
  return new Date(seconds * 1000).toLocaleString(state.lang === "fr" ? "fr-FR" : "en-GB");
}

function renderStatus(status) {
  const number = new Intl.NumberFormat(state.lang === "fr" ? "fr-FR" : "en-GB");
  $("st-files").textContent = number.format(status.files);
  $("st-chunks").textContent = number.format(status.chunks);
  $("st-clients").textContent = number.format(status.clients.length);
  $("st-updated").textContent = formatTime(status.last_update);
  $("st-failed").textContent = number.format(status.failed);
  const states = STRINGS[state.lang].watcherStates;
  const watcher = status.watcher;
  if (!watcher) {
    $("st-watcher").textContent = states.none;
  } else {
    const name = states[watcher.state] || watcher.state;
    $("st-watcher").textContent =
      watcher.queue > 0 ? t("watcherQueue", { state: name, queue: watcher.queue }) : name;
  }
  const list = $("failures");
  list.replaceChildren();
  const reasons = STRINGS[state.lang].reasons;
  for (const item of status.failures) {
    const entry = document.createElement("li");
    const path = document.createElement("code");
    path.textContent = item.path;
    entry.append(path, " — ", reasons[item.reason] || item.reason);
    list.append(entry);
  }
  $("no-failures").hidden = status.failures.length > 0;
}

function renderClients(clients) {
  const select = $("client");
  const chosen = select.value;
  for (const option of [...select.options].slice(1)) option.remove();
  for (const client of clients) {
    const option = document.createElement("option");
    option.value = client.name;
    option.textContent = client.name;
    select.append(option);
  }
  select.value = clients.some((c) => c.name === chosen) ? chosen : "";
}

async function refresh() {
  try {
    const status = await getJSON("/api/status");
    state.status = status;
    renderStatus(status);
    renderClients(status.clients);
    $("token-box").hidden = true;
    showError(null);
  } catch (error) {
    showError(error);
  }
}

// --- asking --------------------------------------------------------------------------------

const MARKER = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g;

function renderText(container, text, citations) {
  // The answer as text nodes, each [n] a link to its source (never HTML from the server).
  container.replaceChildren();
  const cited = new Set((citations || []).map((c) => c.n));
  let last = 0;
  for (const match of text.matchAll(MARKER)) {
    container.append(text.slice(last, match.index));
    const numbers = match[1].split(/\s*[,;]\s*/).map(Number);
    container.append("[");
    numbers.forEach((n, i) => {
      if (i > 0) container.append(", ");
      if (cited.has(n)) {
        const link = document.createElement("a");
        link.href = `#cite-${n}`;
        link.className = "marker";
        link.textContent = String(n);
        link.addEventListener("click", (event) => {
          event.preventDefault();
          openCitation(n);
        });
        container.append(link);
      } else {
        container.append(String(n));
      }
    });
    container.append("]");
    last = match.index + match[0].length;
  }
  container.append(text.slice(last));
}

function openCitation(n) {
  const details = document.querySelector(`#cite-${n} details`);
  if (!details) return;
  details.open = true;
  details.querySelector("summary").focus();
}

function highlighted(passage, snippet) {
  // The passage, with the sentence that supports the answer marked.
  const block = document.createElement("blockquote");
  block.className = "passage";
  const at = snippet ? passage.indexOf(snippet.replace(/…$/, "")) : -1;
  if (at < 0) {
    block.textContent = passage || snippet;
    return block;
  }
  const end = at + snippet.replace(/…$/, "").length;
  const mark = document.createElement("mark");
  mark.textContent = passage.slice(at, end);
  block.append(passage.slice(0, at), mark, passage.slice(end));
  return block;
}

function renderCitation(citation) {
  const item = document.createElement("li");
  item.id = `cite-${citation.n}`;
  item.className = "citation";
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  const where = citation.path + (citation.source ? ` › ${citation.source}` : "");
  const number = document.createElement("span");
  number.className = "n";
  number.textContent = `[${citation.n}]`;
  const path = document.createElement("span");
  path.className = "path";
  path.textContent = where;
  const client = document.createElement("span");
  client.className = "client";
  client.textContent = citation.client;
  summary.append(number, " ", path, " ", client);
  const quote = document.createElement("p");
  quote.className = "snippet";
  quote.textContent = `« ${citation.snippet} »`;
  const body = document.createElement("div");
  body.className = "citation-body";
  const passageTitle = document.createElement("h4");
  passageTitle.textContent = t("passage");
  const facts = [];
  if (citation.page) facts.push(t("page", { page: citation.page }));
  if (citation.score !== null && citation.score !== undefined) {
    facts.push(t("score", { score: citation.score.toFixed(2) }));
  }
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = facts.join(" · ");
  const locationTitle = document.createElement("h4");
  locationTitle.textContent = t("location");
  const location = document.createElement("p");
  location.className = "location";
  const code = document.createElement("code");
  code.textContent = citation.location || citation.path;
  location.append(code);
  if (navigator.clipboard && window.isSecureContext) {
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "secondary small";
    copy.textContent = t("copy");
    copy.addEventListener("click", async () => {
      await navigator.clipboard.writeText(code.textContent);
      copy.textContent = t("copied");
    });
    location.append(" ", copy);
  }
  body.append(
    passageTitle,
    highlighted(citation.passage, citation.snippet),
    meta,
    locationTitle,
    location,
  );
  details.append(summary, body);
  item.append(details, quote);
  return item;
}

function renderAnswer(answer) {
  const box = $("answer");
  renderText(box, answer.answer, answer.citations);
  box.classList.toggle("not-found", answer.not_found);
  const meta = [];
  if (answer.not_found) meta.push(t("notFoundMeta"));
  else {
    meta.push(
      t("meta", {
        seconds: answer.seconds.toLocaleString(state.lang === "fr" ? "fr-FR" : "en-GB", {
          maximumFractionDigits: 1,
        }),
        backend: answer.backend,
        model: answer.model,
      }),
    );
  }
  if (answer.attributed) meta.push(t("attributed"));
  $("answer-meta").textContent = meta.join(" · ");
  const list = $("citations");
  list.replaceChildren(...answer.citations.map(renderCitation));
  $("sources-title").hidden = answer.citations.length === 0;
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  return { event, data: data.length ? JSON.parse(data.join("\n")) : null };
}

function setBusy(busy) {
  $("answer").setAttribute("aria-busy", busy ? "true" : "false");
  $("ask-button").disabled = busy;
  $("stop-button").hidden = !busy;
}

async function ask(question, client) {
  showError(null);
  state.answer = null;
  const box = $("answer");
  $("answer-box").hidden = false;
  box.classList.remove("not-found");
  box.textContent = "";
  $("answer-meta").textContent = t("thinking");
  $("citations").replaceChildren();
  $("sources-title").hidden = true;
  setBusy(true);
  const controller = new AbortController();
  state.controller = controller;
  let written = "";
  try {
    const response = await fetch("/api/ask", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify({ question, client: client || null }),
      signal: controller.signal,
    });
    if (!response.ok) throw await failure(response);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const { event, data } = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event === "token") {
          written += data.text;
          box.textContent = written;
          if (written) $("answer-meta").textContent = "";
        } else if (event === "answer") {
          state.answer = data;
          renderAnswer(data);
        } else if (event === "error") {
          throw new ApiFailure(data.status, data.error.message);
        }
      }
    }
  } catch (error) {
    if (error.name === "AbortError") $("answer-meta").textContent = t("stopped");
    else {
      $("answer-meta").textContent = "";
      if (!written) $("answer-box").hidden = true;
      showError(error);
    }
  } finally {
    state.controller = null;
    setBusy(false);
  }
}

// --- wiring --------------------------------------------------------------------------------

function start() {
  applyLanguage(chooseLanguage());
  $("lang").addEventListener("change", (event) => {
    localStorage.setItem("huisclos.lang", event.target.value);
    applyLanguage(event.target.value);
  });
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (!question || state.controller) return;
    ask(question, $("client").value);
  });
  $("stop-button").addEventListener("click", () => {
    if (state.controller) state.controller.abort();
  });
  $("refresh").addEventListener("click", refresh);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem("huisclos.token", $("token").value.trim());
    $("token").value = "";
    refresh();
  });
  refresh();
  setInterval(() => {
    if (!document.hidden && !state.controller) refresh();
  }, 15000);
  $("question").focus();
}

document.addEventListener("DOMContentLoaded", start);
