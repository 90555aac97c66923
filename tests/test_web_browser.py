"""The labeling page in a real browser: headless Chromium (Debian's `chromium`, installed by
.ci/run) driven by Playwright. A person labels two rounds of a small unlabeled folder by clicking and
by keyboard, reloads mid-round, undoes, finishes each round, waits for the next query, exports the
network and stops the server."""
from __future__ import annotations

import csv
import json
import os
import shutil
import urllib.request

import pytest

from tests.test_web import TOKEN
from tests.web_support import CLASSES, make_folder, start_server, wait_for

CHROMIUM = os.environ.get("JAXAL_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _skip_reason() -> str | None:
  try:
    import playwright.sync_api  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    return "the browser test needs the playwright package (pip install '.[test]')"
  if not CHROMIUM:
    return ("the browser test needs Chromium: no `chromium` on PATH (apt-get install chromium, "
            "as .ci/run does, or set JAXAL_CHROMIUM)")
  return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_skip_reason() is not None,
                                                   reason=_skip_reason() or "")]


def _state(base):
  with urllib.request.urlopen(f"{base}/api/state?token={TOKEN}", timeout=30) as r:
    return json.loads(r.read())


def _csv(workdir, r):
  with open(os.path.join(workdir, f"round_{r:03d}", "labels.csv")) as f:
    rows = [row for row in csv.reader(f) if row and not row[0].startswith("#")]
  return {int(row[0]): row[1] for row in rows[1:]}


def test_label_two_rounds_in_the_browser(tmp_path):
  from playwright.sync_api import sync_playwright  # pylint: disable=import-outside-toplevel
  folder, workdir = str(tmp_path / "pool"), str(tmp_path / "work")
  truth = make_folder(folder)
  from jaxal.data.sources import load_unlabeled  # pylint: disable=import-outside-toplevel
  paths = load_unlabeled(folder).paths
  proc, base = start_server(folder, workdir, TOKEN)
  try:
    wait_for(lambda: _state(base))
    with sync_playwright() as p:
      browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
      # bypass_csp: the page forbids eval; Playwright evaluates its wait conditions as strings.
      page = browser.new_page(viewport={"width": 1100, "height": 820}, bypass_csp=True)
      page.goto(f"{base}/?token={TOKEN}")
      for r in (0, 1):
        page.wait_for_function(f"document.querySelector('#progress').textContent"
                               f".startsWith('round {r + 1} of 2')", timeout=240_000)
        page.wait_for_selector("#grid .card")
        s = _state(base)
        answers = [CLASSES[truth[paths[it["index"]]]] for it in s["images"]]
        if r == 0:
          # By clicking: select the second card, then click the class button.
          page.click("#grid .card[data-i='1']")
          page.click(f"#classbar button[data-answer='{answers[1]}']")
          page.wait_for_function("document.querySelectorAll('#grid .card.answered').length == 1")
          page.click("#grid .card[data-i='0']")
          page.keyboard.press(str(CLASSES.index(answers[0]) + 1))
          page.keyboard.press("s")   # the third image: skip
          page.wait_for_function("document.querySelectorAll('#grid .card.answered').length == 3")
          rows = _csv(workdir, 0)
          assert [rows[it["index"]] for it in s["images"][:3]] == answers[:2] + ["skip"]
          page.reload()   # mid-round: the answers stay
          page.wait_for_function("document.querySelectorAll('#grid .card.answered').length == 3")
          assert "3 of 6 answered" in page.inner_text("#progress")
          page.keyboard.press("z")   # undo the skip
          page.wait_for_function("document.querySelectorAll('#grid .card.answered').length == 2")
          assert _csv(workdir, 0)[s["images"][2]["index"]] == ""
          page.click("#grid .card[data-i='2']")
          rest = range(2, 6)
        else:
          assert all(it["proposed"] in CLASSES for it in s["images"])
          assert "model: " in page.inner_text("#grid .card[data-i='0'] .cap")
          rest = range(6)
        for i in rest:   # by keyboard, each answer moves to the next open image
          page.keyboard.press(str(CLASSES.index(answers[i]) + 1))
        page.wait_for_function("!document.querySelector('#finish').disabled")
        rows = _csv(workdir, r)
        assert [rows[it["index"]] for it in s["images"]] == answers
        page.keyboard.press("Enter")
        if r == 0:
          page.wait_for_selector("#training:not([hidden])")
      page.wait_for_selector("#done:not([hidden])", timeout=240_000)
      page.click("#tab-results")
      page.wait_for_selector("#curve svg circle")
      assert "held-out share" in page.inner_text("#curve-note")
      page.click("#export-model")
      page.wait_for_function("document.querySelector('#export-out').textContent"
                             ".includes('load_model')")
      page.click("#stop")
      browser.close()
    assert proc.wait(60) == 0   # every round answered
    assert os.path.isfile(os.path.join(workdir, "export", "model", "model.json"))
  finally:
    if proc.poll() is None:
      proc.kill()
    out = proc.stdout.read()
    print(out[-3000:])
