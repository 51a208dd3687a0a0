"""The web page, driven in a real headless Chromium against ``huisclos serve``.

As ``make run`` does: the sample tree is indexed with ``huisclos index``, then
``huisclos serve`` (the watcher, the page, the API, the embedded default
model) runs in its own process; Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``make install``) types a question, reads
the streamed answer and opens its citation. Chromium's own log of the page's
requests shows that nothing is fetched outside the page's origin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import SAMPLE

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HUISCLOS = [sys.executable, "-m", "huisclos.pipeline.cli"]
WEB = resources.files("huisclos.pipeline.server").joinpath("web")
_EXTERNAL = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|wss?://", re.I)
_SVG_NAMESPACE = 'xmlns="http://www.w3.org/2000/svg"'  # a name, never fetched


def test_the_page_names_no_external_url() -> None:
    names = sorted(item.name for item in WEB.iterdir())
    assert names == ["app.js", "favicon.svg", "index.html", "style.css"]
    for name in names:
        text = WEB.joinpath(name).read_text(encoding="utf-8").replace(_SVG_NAMESPACE, "")
        found = {m.group() for m in _EXTERNAL.finditer(text)}
        assert not found, f"{name} refers to {found}"
        assert "cdn" not in text.lower() and "fonts.googleapis" not in text


def test_every_control_of_the_page_has_a_label() -> None:
    html = WEB.joinpath("index.html").read_text(encoding="utf-8")
    controls = re.findall(r'<(?:input|select|textarea)\b[^>]*\bid="([^"]+)"', html)
    assert controls, "no form control found"
    for control in controls:
        assert f'<label for="{control}"' in html, f"#{control} has no label"
    assert 'aria-live="polite"' in html and 'lang="fr"' in html
    assert "<script>" not in html and " style=" not in html  # the CSP allows neither


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``huisclos index`` then ``huisclos serve`` on the sample tree, in their own process."""
    home = tmp_path_factory.mktemp("web") / "vault"
    env = {
        **os.environ,
        "HUISCLOS_HOME": str(home),
        "HUISCLOS_KEY_SOURCE": "file",
        "HUISCLOS_CONVERT_WORKERS": "0",
    }
    subprocess.run([*HUISCLOS, "index", str(SAMPLE)], env=env, check=True, timeout=600)
    process = subprocess.Popen(
        [*HUISCLOS, "serve", "--port", "0", str(SAMPLE)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    served = Served("", process)
    for line in process.stdout:
        served.output.append(line)
        found = re.search(r"open (http://127\.0\.0\.1:\d+/) in a browser", line)
        if found:
            served.url = found.group(1)
            break
    assert served.url, "huisclos serve printed no URL:\n" + "".join(served.output)
    # keep reading what it prints (a full pipe would block it), to show it if a test fails
    reader = threading.Thread(target=served.output.extend, args=(process.stdout,), daemon=True)
    reader.start()
    yield served
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, "".join(served.output)
    reader.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through chromedriver, logging the page's network requests."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(program):
            pytest.fail(f"{program} is missing: `make install` installs chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="huisclos-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "fr-FR,fr"})
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # An explicit driver: Selenium Manager (which would download one) never runs.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


_RECORD_ANSWER = """
window.__answerStates = [];
new MutationObserver((records) => {
  const busy = document.getElementById("answer").getAttribute("aria-busy");
  for (const record of records) {
    for (const node of record.addedNodes) window.__answerStates.push([busy, node.textContent]);
  }
}).observe(document.getElementById("answer"), {childList: true});
"""


def _ask(driver: Any, question: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.execute_script(_RECORD_ANSWER)
    box = driver.find_element(By.ID, "question")
    box.clear()
    box.send_keys(question)
    box.send_keys(Keys.ENTER)  # the keyboard, as a person would


def _wait(driver: Any, seconds: float, condition: Any, message: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(condition, message)


def _watcher_is(driver: Any, state: str, served: Served) -> None:
    """The status panel shows the watcher in ``state`` (it starts beside the server)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(driver: Any) -> bool:
        if driver.find_element(By.ID, "st-watcher").text == state:
            return True
        driver.find_element(By.ID, "refresh").click()
        return False

    WebDriverWait(driver, 90, poll_frequency=1).until(shown, "".join(served.output))


def _requests(driver: Any) -> list[tuple[str, str]]:
    """(document, URL) of every request Chromium saw (its Network.requestWillBeSent events)."""
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            params = message["params"]
            requests.append((params.get("documentURL", ""), params["request"]["url"]))
    return requests


@pytest.mark.integration
def test_a_question_typed_in_the_page_gets_a_streamed_cited_answer(
    served: Served, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served.url)
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "fr"
    assert browser.find_element(By.CSS_SELECTOR, "label[for=question]").text == "Votre question"
    _wait(browser, 60, lambda d: d.find_element(By.ID, "st-files").text == "6", "no status")
    clients = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#client option")]
    assert clients == ["Tous les clients", "Acme Ltd", "Dupont SARL", "Martin Kiné", "_shared"]
    _watcher_is(browser, "active", served)
    assert browser.find_element(By.ID, "no-failures").is_displayed()

    _ask(browser, "Quel est le montant de la dernière facture de Dupont SARL ?")
    _wait(browser, 300, lambda d: d.find_elements(By.CSS_SELECTOR, "#citations li"), "no source")

    answer = browser.find_element(By.ID, "answer")
    assert "4 860" in answer.text or "4860" in answer.text
    assert answer.get_attribute("aria-busy") == "false"
    states = browser.execute_script("return window.__answerStates")
    streaming = [text for busy, text in states if busy == "true" and text]
    assert len(set(streaming)) >= 3, states  # the answer grew piece by piece while busy
    summary = browser.find_element(By.CSS_SELECTOR, "#citations summary")
    assert "Dupont SARL/factures/facture-2024-117.docx" in summary.text
    passage = browser.find_element(By.CSS_SELECTOR, "#citations .passage")
    assert not passage.is_displayed()
    summary.click()
    assert passage.is_displayed()
    assert "Montant TTC : 4 860,00 €" in passage.text
    assert "4 860,00" in browser.find_element(By.CSS_SELECTOR, "#citations mark").text
    location = browser.find_element(By.CSS_SELECTOR, "#citations .location code")
    assert location.is_displayed()
    assert Path(location.text) == SAMPLE / "Dupont SARL" / "factures" / "facture-2024-117.docx"
    # the [n] in the answer leads to its source
    marker = answer.find_element(By.CSS_SELECTOR, "a.marker")
    assert f"[{marker.text}]" in summary.text


@pytest.mark.integration
def test_the_page_in_english_with_a_client_filter_asks_nothing_outside_its_origin(
    served: Served, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(served.url)
    _wait(browser, 60, lambda d: d.find_element(By.ID, "st-files").text == "6", "no status")
    Select(browser.find_element(By.ID, "lang")).select_by_value("en")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert browser.find_element(By.ID, "ask-button").text == "Ask"
    Select(browser.find_element(By.ID, "client")).select_by_visible_text("Acme Ltd")
    _ask(browser, "What are Acme's fees?")
    _wait(browser, 300, lambda d: d.find_elements(By.CSS_SELECTOR, "#citations li"), "no source")
    assert re.search(r"1[, \u202f]?200", browser.find_element(By.ID, "answer").text)
    summaries = browser.find_elements(By.CSS_SELECTOR, "#citations summary")
    assert summaries and all("Acme Ltd" in s.text for s in summaries)
    _watcher_is(browser, "running", served)

    origin = urlsplit(served.url)[:2]
    requests = _requests(browser)
    ours = [url for document, url in requests if urlsplit(document)[:2] == origin]
    paths = {urlsplit(url).path for url in ours}
    assert {"/", "/static/app.js", "/static/style.css", "/api/status", "/api/ask"} <= paths
    outside = [url for url in ours if urlsplit(url)[:2] != origin]
    assert outside == [], f"the page asked for {outside}"
    # nor did anything else in the browser reach for the network (its own pages are chrome://)
    web = [url for _, url in requests if url.startswith(("http:", "https:", "ws:", "wss:"))]
    assert [url for url in web if urlsplit(url)[:2] != origin] == []
    refused = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert refused == [], refused  # no script error, no Content-Security-Policy violation
