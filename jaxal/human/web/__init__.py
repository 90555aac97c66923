"""The labeling page (`--oracle=web`, `python -m experiments.label`): a person labels the pool in a
browser while the server trains each next round in the background.

`Labeling` puts the pieces together (a `LabelingService` around the run, the Starlette app, the
pictures, the exports); `serve` binds the socket (loopback unless `--host` says otherwise), prints
the address with its access token and runs the server (uvicorn) until the person stops it (the
page's Stop button or Ctrl-C). Everything answered is on disk at every moment: running the same
command again resumes on the same round.
"""
from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from typing import Any, Callable, Mapping

import jax
import numpy as np

from jaxal import reporting
from jaxal.errors import ArgumentError
from jaxal.human.answers import _csv_text
from jaxal.human.person import PersonRun
from jaxal.human.pictures import png_bytes
from jaxal.human.web.app import make_app
from jaxal.human.web.service import LabelingService, Refused

EXPORT_DIR = "export"


class Labeling:
  """The page of one person's run: `service` (state and answers) and `app` (HTTP)."""

  def __init__(self, person: Mapping[str, Any], ds, cfg: Mapping[str, Any], results: dict,
               write_results: Callable[[dict, str], None], token: str,
               log: Callable[[str], None] = print):
    self.ds, self.cfg, self.results, self.token, self.log = ds, cfg, results, token, log
    self.workdir = person["workdir"]
    self._write_results = write_results
    self.stop: Callable[[], None] = lambda: None
    self.service = LabelingService(lambda: PersonRun(**person), on_round=self._save_results,
                                   on_complete=self._complete, log=log)
    self.app = make_app(self.service, token, picture=self.picture, labels_csv=self.labels_csv,
                        export_model=self.export_model, stop=lambda: self.stop())

  @property
  def person(self) -> PersonRun:
    return self.service.person

  def _save_results(self) -> None:
    p = self.person
    run = {"strategy": p.name, **p.records[0]}
    self._write_results({**self.results, "runs": self.results["runs"] + [run]}, self.workdir)

  def _complete(self) -> None:
    try:
      paths = self.export_model()
    except Refused as e:   # no exportable network: the labels still are
      out = os.path.join(self.workdir, EXPORT_DIR)
      os.makedirs(out, exist_ok=True)
      reporting.write_atomic(os.path.join(out, "labels.csv"), self.labels_csv())
      self.log(f"labels: {os.path.join(out, 'labels.csv')}; no model exported: {e}")
      return
    self.log(f"labels: {paths['labels']}; model: {paths['model']}")
    self.log(f"  {paths['snippet']}")

  def picture(self, r: int, kind: str, slot: int) -> tuple[bytes, str]:
    item = self.service.item(r, kind, slot)
    if kind == "cluster":
      with open(item.picture, "rb") as f:   # the montage this run wrote (never a request's path)
        return f.read(), "image/png"
    pos = self.person.position[item.key]
    if self.ds.unlabeled and self.ds.paths:
      from jaxal.data.sources.unlabeled import read_original  # pylint: disable=import-outside-toplevel
      original = read_original(self.ds, pos)
      if original is not None:
        return original
    return png_bytes(np.asarray(self.person.images[pos]), 320), "image/png"

  def labels_csv(self) -> str:
    with self.service.lock:
      p = self.person
      if p is None:
        raise Refused("the run is still opening.", 409)
      rows = [["path", "label"]]
      for index, c in p.labels():
        pos = p.position[index]
        rows.append([self.ds.paths[pos] if self.ds.paths else str(index), p.classes.names[c]])
      return _csv_text(rows)

  def export_model(self) -> dict:
    """Writes `<workdir>/export/labels.csv` and the current network to `<workdir>/export/model`."""
    from jaxal.export import export_model  # pylint: disable=import-outside-toplevel
    with self.service.lock:
      p = self.person
      if self.cfg.get("train", "full") == "linear":
        raise Refused("the network is a head on frozen embeddings (--train=linear), which cannot "
                      "be exported as an image model yet; the labels export works.", 409)
      if p is None or not any("train_loss" in row for row in p.records[0]["rounds"]) and (
          p.pending is None or "train_loss" not in p.pending.record):
        raise Refused("no network is trained yet: label a round first.", 409)
      states = p.pending.states if p.pending is not None else p.states
      variables = jax.tree.map(lambda a: np.asarray(a)[0], states.variables)
      out = os.path.abspath(os.path.join(self.workdir, EXPORT_DIR))
      os.makedirs(out, exist_ok=True)
      labels = os.path.join(out, "labels.csv")
      reporting.write_atomic(labels, self.labels_csv())
      config = self.results["config"]
      model = export_model(os.path.join(out, "model"), model=self.cfg["model"],
                           variables=variables, class_names=p.classes.names,
                           image_shape=config["image_shape"], mean=config["channel_mean"],
                           std=config["channel_std"], method=p.round_fn.uncertainty.method,
                           members=p.round_fn.uncertainty.members,
                           info={"labels": len(p.labels()), "round": p.step})
    snippet = (f"python -c \"import jaxal; print(jaxal.load_model('{model}')"
               ".predict(['image.png']))\"")
    return {"labels": labels, "model": model, "snippet": snippet}


def _bind(host: str, port: int) -> socket.socket:
  family = socket.AF_INET6 if ":" in host else socket.AF_INET
  sock = socket.socket(family, socket.SOCK_STREAM)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  try:
    sock.bind((host, port))
  except OSError as e:
    sock.close()
    raise ArgumentError(f"{{port}}={port}: cannot listen on {host}:{port} ({e.strerror or e}); "
                        "choose another {port} (0 = any free one) or {host}.") from e
  sock.listen(64)
  sock.set_inheritable(True)
  return sock


def _is_loopback(host: str) -> bool:
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return host == "localhost"


def serve(person: Mapping[str, Any], ds, cfg: Mapping[str, Any], results: dict,
          write_results: Callable[[dict, str], None]) -> tuple[list[dict], str | None]:
  """Runs the labeling page until the person stops it. Returns (the run's records, None when
  every round is answered, else the line saying how to continue)."""
  import uvicorn  # pylint: disable=import-outside-toplevel
  log = person.get("log", print)
  host, port = str(cfg.get("host") or "127.0.0.1"), int(cfg.get("port", 8765))
  token = str(cfg.get("token") or secrets.token_urlsafe(16))
  sock = _bind(host, port)
  port = sock.getsockname()[1]
  lab = Labeling(person, ds, cfg, results, write_results, token, log)
  server = uvicorn.Server(uvicorn.Config(lab.app, log_level="warning", lifespan="off",
                                         access_log=False))
  lab.stop = lambda: setattr(server, "should_exit", True)
  lab.service.start()
  shown = f"[{host}]" if ":" in host else host
  log(f"labeling page: http://{shown}:{port}/?token={token}")
  if not _is_loopback(host):
    log(f"  note: --host={host} makes the page reachable from other machines; anyone with this "
        "address (and its token) can label.")
  log("  stop with the page's Stop button or Ctrl-C; every answer is saved as it is given.")
  try:
    server.run(sockets=[sock])
  finally:
    sock.close()
    if lab.service.phase == "training":
      log("waiting for the round in progress to be saved (Ctrl-C again leaves now; it will be "
          "redone)...")
      lab.service.wait()
    if lab.person is not None:
      lab.person.close()
  p = lab.person
  records = p.records if p is not None else [{"seed": int(person["seed"]), "rounds": []}]
  if p is not None and p.complete:
    return records, None
  return records, (f"labeling stopped at round {p.step if p else 0}; every answer is saved in "
                   f"{person['workdir']}; run the same command to continue.")
