"""The labeling page over HTTP (Starlette's test client): the token, pictures only of the open
question, answers checked against it and written at once to labels.csv, undo, concurrent posts,
finishing a round, the exports, Label Studio files, and a kill-and-restart of the real server."""
from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from tests.web_support import (CLASSES, make_folder, make_labeling, start_server,  # noqa: E402
                               true_answer, wait_for)

TOKEN = "test-token-123"
H = {"X-Jaxal-Token": TOKEN}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
  root = tmp_path_factory.mktemp("web")
  folder = str(root / "pool")
  truth = make_folder(folder)
  lab = make_labeling(folder, str(root / "work"))
  lab.service.start()
  client = TestClient(lab.app)
  wait_for(lambda: client.get("/api/state", headers=H).json())
  yield lab, client, truth
  lab.service.wait(60)
  if lab.person is not None:
    lab.person.close()


def _labels_csv(lab, r):
  path = os.path.join(lab.workdir, f"round_{r:03d}", "labels.csv")
  with open(path) as f:
    rows = [row for row in csv.reader(f) if row and not row[0].startswith("#")]
  return {int(row[0]): row[1] for row in rows[1:]}


def _raw(lab, r):
  with open(os.path.join(lab.workdir, f"round_{r:03d}", "labels.csv"), "rb") as f:
    return f.read()


def test_every_request_needs_the_token(page):
  _, client, _ = page
  for path in ("/", "/api/state", "/static/app.js", "/api/image/0/0", "/api/export/labels.csv"):
    assert client.get(path).status_code == 403, path
    assert client.get(path + "?token=wrong-token-000").status_code == 403, path
  assert client.post("/api/answer", json={"round": 0, "slot": 0, "answer": "zero"}).status_code == 403
  html = client.get(f"/?token={TOKEN}")
  assert html.status_code == 200 and f"app.js?token={TOKEN}" in html.text
  assert html.headers["referrer-policy"] == "no-referrer"
  assert client.get("/api/state", headers=H).status_code == 200


def test_pictures_only_of_the_open_question(page):
  lab, client, _ = page
  s = client.get("/api/state", headers=H).json()
  r = s["round"]
  got = client.get(f"/api/image/{r}/0", headers=H)
  assert got.status_code == 200 and got.content[:8] == b"\x89PNG\r\n\x1a\n"
  # The original file of that pool item, byte for byte (the page shows full resolution).
  index = s["images"][0]["index"]
  with open(os.path.join(lab.ds.root, lab.ds.paths[index]), "rb") as f:
    assert got.content == f.read()
  assert client.get(f"/api/image/{r}/{len(s['images'])}", headers=H).status_code == 404
  assert client.get(f"/api/image/{r + 1}/0", headers=H).status_code == 409
  for bad in ("/api/image/0/..%2F..%2Fetc%2Fpasswd", "/api/image/0/-1", "/static/..%2Fapp.py",
              "/static/%2Fetc%2Fpasswd", "/static/index.html", "/api/image/0/0/../../../x"):
    assert client.get(bad, headers=H).status_code == 404, bad


def test_answers_are_checked_and_written_at_once(page):
  lab, client, truth = page
  s = client.get("/api/state", headers=H).json()
  r, items = s["round"], s["images"]
  want = true_answer(truth, lab.ds.paths, items[0]["index"])
  s2 = client.post("/api/answer", headers=H, json={"round": r, "kind": "image", "slot": 0,
                                                   "answer": want}).json()
  assert _labels_csv(lab, r)[items[0]["index"]] == want
  assert s2["images"][0]["answer"] == want and s2["answered"] == 1
  before = _raw(lab, r)
  for body, code in (({"round": r + 1, "slot": 1, "answer": "one"}, 409),
                     ({"round": r, "slot": 1, "answer": "seven"}, 400),
                     ({"round": r, "slot": 99, "answer": "one"}, 404),
                     ({"round": str(r), "slot": 1, "answer": "one"}, 409),
                     ({"round": r, "slot": 1, "answer": "accept"}, 400),
                     ({"round": r, "kind": "cluster", "slot": 0, "answer": "accept"}, 404),
                     ({"round": r, "kind": "../x", "slot": 0, "answer": "one"}, 400)):
    got = client.post("/api/answer", headers=H, json=body)
    assert got.status_code == code, (body, got.text)
    assert "error" in got.json()
  got = client.post("/api/answer", headers={**H, "Content-Type": "application/json"},
                    content=b"{not json")
  assert got.status_code == 400
  assert _raw(lab, r) == before   # nothing written by a refused request


def test_undo_clears_the_last_answer(page):
  lab, client, _ = page
  s = client.get("/api/state", headers=H).json()
  r = s["round"]
  client.post("/api/answer", headers=H, json={"round": r, "slot": 1, "answer": "skip"})
  client.post("/api/answer", headers=H, json={"round": r, "slot": 2, "answer": "unsure"})
  client.post("/api/undo", headers=H, json={"round": r})
  rows = _labels_csv(lab, r)
  assert rows[s["images"][1]["index"]] == "skip" and rows[s["images"][2]["index"]] == ""
  client.post("/api/undo", headers=H, json={"round": r})
  assert _labels_csv(lab, r)[s["images"][1]["index"]] == ""


def test_concurrent_posts_never_corrupt_the_file(page):
  lab, client, _ = page
  s = client.get("/api/state", headers=H).json()
  r, n = s["round"], len(s["images"])
  errors = []

  def tab(names):
    with TestClient(lab.app) as c:
      for _ in range(5):
        for slot in range(n):
          got = c.post("/api/answer", headers=H, json={"round": r, "slot": slot,
                                                       "answer": names[slot % len(names)]})
          if got.status_code != 200:
            errors.append(got.text)

  threads = [threading.Thread(target=tab, args=(CLASSES,)),
             threading.Thread(target=tab, args=(CLASSES[::-1],))]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert not errors
  rows = _labels_csv(lab, r)   # parses, every item answered with a class from one of the tabs
  assert len(rows) == n and all(v in CLASSES for v in rows.values())


def test_the_files_flow_takes_over_mid_round(page):
  """A person edits labels.csv by hand (as --oracle=human does): the page shows it."""
  lab, client, truth = page
  s = client.get("/api/state", headers=H).json()
  r = s["round"]
  path = os.path.join(lab.workdir, f"round_{r:03d}", "labels.csv")
  with open(path) as f:
    text = f.read()
  idx = s["images"][0]["index"]
  text = "\n".join(f"{idx},two,{ln.split(',')[2]}" if ln.startswith(f"{idx},") else ln
                   for ln in text.splitlines()) + "\n"
  with open(path, "w") as f:
    f.write(text)
  assert client.get("/api/state", headers=H).json()["images"][0]["answer"] == "two"


def test_rounds_run_to_the_end_with_exports(page):
  lab, client, truth = page
  from jaxal import load_model
  assert client.post("/api/export/model", headers=H, json={}).status_code == 409  # cold start
  seen_rounds = []
  while True:
    s = wait_for(lambda: client.get("/api/state", headers=H).json())
    if s["phase"] == "done":
      break
    seen_rounds.append(s["round"])
    if s["answered"] < s["total"]:
      assert client.post("/api/finish", headers=H, json={"round": s["round"]}).status_code == 409
    for it in s["images"]:
      client.post("/api/answer", headers=H, json={
          "round": s["round"], "slot": it["slot"],
          "answer": true_answer(truth, lab.ds.paths, it["index"])})
    if s["round"] >= 1:
      assert all(it["proposed"] in CLASSES for it in s["images"])   # the model proposes
      tasks = json.load(open(os.path.join(lab.workdir, f"round_{s['round']:03d}",
                                          "labelstudio_tasks.json")))
      assert tasks[0]["predictions"][0]["result"][0]["value"]["choices"][0] in CLASSES
    got = client.post("/api/finish", headers=H, json={"round": s["round"]})
    assert got.status_code == 200, got.text
    assert client.post("/api/finish", headers=H, json={"round": s["round"]}).status_code == 409
  assert seen_rounds == [0, 1]
  results = json.load(open(os.path.join(lab.workdir, "results.json")))
  rows = results["runs"][0]["rounds"]
  assert [row["round"] for row in rows] == [0, 1, 2]
  assert rows[0]["cold_start"] == "typiclust" and "test_accuracy" not in rows[-1]
  held = [p for row in rows for p in row.get("heldout", [])]
  assert len(held) == 2 * round(6 * 0.2) and rows[-1]["heldout_size"] == len(held)
  # The labels export: every answer, by the image's path in the folder, with its true class.
  text = client.get("/api/export/labels.csv", headers=H).text.splitlines()
  assert text[0] == "path,label" and len(text) == 1 + 12
  for line in text[1:]:
    path, label = line.split(",")
    assert CLASSES[truth[path]] == label
  export = os.path.join(lab.workdir, "export")
  with open(os.path.join(export, "labels.csv")) as f:
    assert f.read().splitlines() == text
  model = load_model(os.path.join(export, "model"))
  paths = [os.path.join(lab.ds.root, p) for p in lab.ds.paths[:20]]
  pred = model.predict(paths)
  assert len(pred) == 20 and set(pred) <= set(CLASSES)
  # The exported network predicts what the run's final network predicts.
  probs = model.predict_proba(lab.ds.x_train[:20])
  final = lab.person._probs(lab.person.states, np.arange(20))
  np.testing.assert_allclose(probs, final, rtol=1e-5, atol=1e-6)


def test_cluster_rounds_show_montages_and_take_accept_decline_or_a_class(tmp_path):
  folder = str(tmp_path / "pool")
  make_folder(folder)
  lab = make_labeling(folder, str(tmp_path / "work"), strategy="cluster", cluster_size=10,
                      clusters_per_round=3, rounds=2, query_size=4)
  lab.service.start()
  client = TestClient(lab.app)
  try:
    s = wait_for(lambda: client.get("/api/state", headers=H).json())
    assert s["clusters"] == [] and len(s["images"]) == 4   # cold start: images, no network
    for it in s["images"]:
      client.post("/api/answer", headers=H, json={"round": 0, "slot": it["slot"], "answer": "one"})
    client.post("/api/finish", headers=H, json={"round": 0})
    s = wait_for(lambda: client.get("/api/state", headers=H).json())
    assert s["round"] == 1 and len(s["clusters"]) == 3 and s["images"] == []
    got = client.get(f"/api/cluster/1/0", headers=H)
    assert got.status_code == 200 and got.content[:4] == b"\x89PNG"
    for slot, answer in enumerate(("accept", "decline", "two")):
      r = client.post("/api/answer", headers=H, json={"round": 1, "kind": "cluster", "slot": slot,
                                                      "answer": answer})
      assert r.status_code == 200, r.text
    assert client.post("/api/answer", headers=H, json={"round": 1, "kind": "cluster", "slot": 0,
                                                       "answer": "skip"}).status_code == 400
    with open(os.path.join(lab.workdir, "round_001", "clusters.csv")) as f:
      rows = [row for row in csv.reader(f) if row and not row[0].startswith("#")][1:]
    assert [row[3] for row in rows] == [s["clusters"][0]["proposed"], "decline", "two"]
    client.post("/api/finish", headers=H, json={"round": 1})
    s = wait_for(lambda: client.get("/api/state", headers=H).json())
    row = lab.person.records[0]["rounds"][1]
    assert row["clusters_shown"] == 3 and row["clusters_accepted"] == 2
    assert row["cluster_label_accuracy"] is None   # nobody knows the true labels
    assert row["interactions"] == 4 and lab.person.records[0]["rounds"][2]["interactions"] == 7
  finally:
    lab.service.wait(120)
    if lab.person is not None:
      lab.person.close()


def _get(url):
  with urllib.request.urlopen(url, timeout=30) as r:
    return json.loads(r.read())


def _post(url, body):
  req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                               headers={"Content-Type": "application/json"})
  with urllib.request.urlopen(req, timeout=30) as r:
    return json.loads(r.read())


@pytest.mark.slow
def test_kill_and_restart_mid_round_loses_nothing(tmp_path):
  folder, workdir = str(tmp_path / "pool"), str(tmp_path / "work")
  make_folder(folder)
  proc, base = start_server(folder, workdir, TOKEN)
  try:
    s = wait_for(lambda: _get(f"{base}/api/state?token={TOKEN}"))
    for slot, name in ((0, "one"), (1, "two"), (2, "skip")):
      _post(f"{base}/api/answer?token={TOKEN}", {"round": 0, "slot": slot, "answer": name})
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  proc, base = start_server(folder, workdir, TOKEN)   # the same command again
  try:
    s2 = wait_for(lambda: _get(f"{base}/api/state?token={TOKEN}"))
    assert s2["round"] == 0
    assert [it["index"] for it in s2["images"]] == [it["index"] for it in s["images"]]
    assert [it["answer"] for it in s2["images"][:3]] == ["one", "two", "skip"]
    assert s2["answered"] == 3
    _post(f"{base}/api/stop?token={TOKEN}", {})
    assert proc.wait(60) == 3   # stopped before the end: run again to continue
  finally:
    if proc.poll() is None:
      proc.kill()
