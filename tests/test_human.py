"""A person as the oracle: tell with skip / unsure, cluster review, labels.csv (validated line by
line, and a run fed by it equals the simulated oracle's), the terminal session driven through its
input stream (a wrong label, skip, undo, quit and resume), the pictures, and the command line."""
import collections
import io
import json
import os
import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import jaxal
from jaxal import presets as configs
from jaxal import annotation, experiment, human, models
from jaxal import strategies as st
from jaxal.data import make_splits
from jaxal.data.synthetic import gaussian_pool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUMAN_EXTRAS = ("seconds", "skipped", "unsure")


def small_cfg(**overrides):
  cfg = configs.load("default").to_dict()
  cfg.update(strategies="entropy", seeds=1, rounds=2, epochs=2, initial_size=10, query_size=4,
             val_size=20)
  cfg.update(overrides)
  return cfg


def truth_of(cfg):
  """Dataset index -> true class name (what a perfect person answers)."""
  ds = experiment.prepare_dataset(cfg)
  return {int(i): ds.class_names[int(y)] for i, y in zip(ds.train_index, ds.y_train)}


def final_state(workdir, strategy):
  """The newest checkpointed state (seed 0) as numpy arrays."""
  d = os.path.join(workdir, "checkpoints", strategy)
  step = max(int(s) for s in os.listdir(d) if s.isdigit())
  tree = ocp.StandardCheckpointer().restore(os.path.join(d, str(step), "state"))
  return {k: np.asarray(v)[0] for k, v in tree.items() if k in ("labeled", "labels", "selectable",
                                                                "interactions", "round")}


def fill_csv(path, answer):
  """Fills the answer column of a labels.csv / clusters.csv: answer(key) -> text."""
  out, header = [], None
  for line in open(path).read().splitlines():
    if line.startswith("#") or not line.strip():
      out.append(line)
      continue
    cells = line.split(",")
    if header is None:
      header = cells
      out.append(line)
      continue
    col = header.index("label" if "label" in header else "answer")
    cells[col] = answer(int(cells[0]))
    out.append(",".join(cells))
  open(path, "w").write("\n".join(out) + "\n")


def without_extras(results):
  return [[{k: v for k, v in row.items() if k not in HUMAN_EXTRAS} for row in run["rounds"]]
          for run in results["runs"]]


# --------------------------------------------------------------------------------------------------
# tell / tell_query on a small state


@pytest.fixture(scope="module")
def blob_state():
  x, y = gaussian_pool(120, 4, 8, 0)
  pool = jaxal.LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  model = models.get_model("mlp", 4, hidden=(8,))
  tc = jaxal.TrainConfig(epochs=1, batch_size=8)
  round_fn = jaxal.make_round(model, jaxal.make_optimizer(tc), st.random(),
                              budget=jaxal.Budget(initial_size=8, query_size=4, rounds=1), train=tc)
  state = round_fn.init_state(0, make_splits(y, 4, 8, 8, 0), y, pool.x)
  return state, y, pool, round_fn


def test_tell_skip_returns_to_the_pool_and_unsure_leaves_it(blob_state):
  state, y, *_ = blob_state
  free = np.flatnonzero(~np.asarray(state.labeled) & np.asarray(state.selectable))[:4]
  labels = np.array([y[free[0]], annotation.SKIP, annotation.UNSURE, y[free[3]]], np.int32)
  new = annotation.tell(state, jnp.asarray(free), jnp.asarray(labels))
  labeled, selectable = np.asarray(new.labeled), np.asarray(new.selectable)
  assert labeled[free].tolist() == [True, False, False, True]
  assert selectable[free].tolist() == [True, True, False, True]  # unsure is not asked again
  assert np.asarray(new.labels)[free].tolist() == [y[free[0]], -1, -1, y[free[3]]]
  assert int(new.interactions) == 2 and int(new.round) == 1  # one per labeled image
  # Indices < 0 (no candidate was left) change nothing.
  same = annotation.tell(state, jnp.asarray([-1, free[0]]), jnp.asarray([2, 1]))
  assert int(same.num_labeled) == int(state.num_labeled) + 1


def test_tell_query_labels_whole_clusters_and_counts_one_interaction_per_review(blob_state):
  state, y, *_ = blob_state
  n = y.shape[0]
  free = np.flatnonzero(~np.asarray(state.labeled) & np.asarray(state.selectable))
  assignment = np.full(n, -1, np.int32)
  assignment[free[:10]] = 0
  assignment[free[10:25]] = 1
  assignment[free[25:30]] = 2
  q = annotation.Query(indices=jnp.asarray([free[0], free[40]], jnp.int32),
                       clusters=jnp.asarray([0, 1, 2, -1], jnp.int32),
                       sizes=jnp.asarray([10, 15, 5, 0], jnp.int32),
                       members=jnp.full((4, 64), -1, jnp.int32),
                       proposed=jnp.asarray([1, 2, 3, 0], jnp.int32),
                       assignment=jnp.asarray(assignment))
  new, by_cluster = annotation.tell_query(state, q,
                                          jnp.asarray([3, annotation.UNSURE], jnp.int32),
                                          jnp.asarray([1, annotation.DECLINE, 0, 2], jnp.int32))
  labels, by_cluster = np.asarray(new.labels), np.asarray(by_cluster)
  assert labels[free[0]] == 3 and not by_cluster[free[0]]  # the image answer came first
  assert (labels[free[1:10]] == 1).all() and by_cluster[free[1:10]].all()
  assert not np.asarray(new.labeled)[free[10:25]].any()  # declined
  assert (labels[free[25:30]] == 0).all()  # another class than the proposed 3
  assert not np.asarray(new.selectable)[free[40]]
  assert int(new.interactions) == 1 + 3  # one labeled image, three clusters reviewed
  assert int(by_cluster.sum()) == 9 + 5


# --------------------------------------------------------------------------------------------------
# labels.csv, line by line


def _items(keys):
  return [human.Item("image", k, f"/r/images/{k}.png") for k in keys]


DIGITS = human.ClassNames(tuple(str(i) for i in range(10)))
HEADER = "# jaxal round 0/2\n# classes: 0, 1, ...\nindex,label,image\n"


@pytest.mark.parametrize("body,message", [
    ("7,3,a\n8,sevn,b\n9,,c\n", r"labels.csv line 5: unknown label 'sevn'; accepted: a class "
     r"number 0-9 or name \(0, 1, 2, 3, 4, 5, 6, 7, 8, 9\), skip, unsure, or blank"),
    ("7,3,a\n8,1,b\n7,2,a\n9,,c\n", r"labels.csv line 6: image index 7 is listed twice \(also on "
     r"line 4\)"),
    ("7,3,a\n8,1,b\n10,1,x\n9,,c\n", r"labels.csv line 6: image index 10 was not asked in this "
     r"round; the round asks 7, 8, 9"),
    ("7,3,a\n9,1,c\n", r"labels.csv: 1 image index\(s\) of this round have no line: 8"),
    ("7x,3,a\n8,1,b\n9,,c\n", r"labels.csv line 4: index '7x' is not a whole number"),
])
def test_malformed_labels_csv_names_the_file_and_line(tmp_path, body, message):
  path = tmp_path / "labels.csv"
  path.write_text(HEADER + body)
  with pytest.raises(human.LabelFileError, match=message):
    human.read_answers(str(path), _items([7, 8, 9]), DIGITS)
  path.write_text("# comment\nidx,answer\n7,3\n")
  with pytest.raises(human.LabelFileError, match=r"line 2: the header must name the columns "
                     r"'index' and 'label'"):
    human.read_answers(str(path), _items([7, 8, 9]), DIGITS)


def test_labels_csv_from_a_spreadsheet_is_read(tmp_path):
  """Semicolons, a byte-order mark, reordered and extra columns, names in another case."""
  path = tmp_path / "labels.csv"
  names = human.ClassNames(("cat", "dog", "bird"))
  path.write_bytes("\ufeff\"# note, with a comma\"\nlabel;note;index\nDOG;x;7\n;;8\nunsure;;9\n"
                   "\n2;;10\nskip;;11\n".encode("utf-8"))
  answers, lines = human.read_answers(str(path), _items([7, 8, 9, 10, 11]), names)
  assert answers == [1, None, annotation.UNSURE, 2, annotation.SKIP]
  assert lines == [3, 4, 5, 7, 8]


def test_class_numbers_are_refused_when_names_are_other_classes_numbers():
  subset = human.ClassNames(("3", "5", "8"))  # --classes=3,5,8
  assert not subset.numbers_ok
  assert subset.lookup("5") == 1 and subset.lookup("2") is None
  assert "numbers are not accepted" in subset.accepted()
  assert DIGITS.numbers_ok and DIGITS.lookup("7") == 7
  named = human.ClassNames(("T-shirt/top", "Trouser"))
  assert named.lookup("trouser") == 1 and named.lookup("0") == 0 and named.lookup("2") is None


# --------------------------------------------------------------------------------------------------
# --oracle=human: the files carry the answers


def answer_rounds(cfg, work, answer_images, answer_clusters=None, max_calls=10):
  """Runs `run_experiment` again and again, filling each round's CSVs, until it finishes."""
  logs = []
  for _ in range(max_calls):
    res = experiment.run_experiment(cfg, work, log=logs.append)
    if not res.get("paused"):
      return res, logs
    r = max(int(d[6:]) for d in os.listdir(work) if d.startswith("round_"))
    rdir = os.path.join(work, f"round_{r:03d}")
    if os.path.exists(os.path.join(rdir, "labels.csv")):
      fill_csv(os.path.join(rdir, "labels.csv"), answer_images)
    if os.path.exists(os.path.join(rdir, "clusters.csv")):
      fill_csv(os.path.join(rdir, "clusters.csv"), lambda c, rdir=rdir: answer_clusters(rdir, c))
  raise AssertionError("the run did not finish:\n" + "\n".join(logs))


@pytest.mark.slow
def test_labels_csv_filled_by_a_script_continues_exactly_as_the_simulated_oracle(tmp_path):
  cfg = small_cfg(rounds=3, classes="3,5,8", initial_size=6, val_size=12)  # names, not numbers
  truth = truth_of(cfg)
  want = experiment.run_experiment(cfg, str(tmp_path / "sim"), log=lambda m: None)
  work = str(tmp_path / "person")
  first = experiment.run_experiment({**cfg, "oracle": "human"}, work, log=lambda m: None)
  assert "round 0/3 waits for your answers" in first["paused"]
  assert "classes  3, 5, 8" in first["paused"]
  got, logs = answer_rounds({**cfg, "oracle": "human"}, work, lambda i: truth[i])
  assert without_extras(got) == without_extras(want)  # selections, labels, accuracies: exact
  assert [r["selected"] for r in got["runs"][0]["rounds"][:-1]] == [
      [int(line.split(",")[0]) for line in open(os.path.join(work, f"round_{r:03d}",
                                                               "labels.csv"))
       if line[0].isdigit()] for r in range(3)]
  a, b = final_state(work, "entropy"), final_state(str(tmp_path / "sim"), "entropy")
  for key in ("labeled", "labels", "selectable", "interactions"):
    np.testing.assert_array_equal(a[key], b[key])
  assert not os.listdir(os.path.join(work, "checkpoints", "pending"))  # all told


@pytest.mark.slow
def test_partial_or_malformed_labels_csv_stops_and_nothing_is_consumed(tmp_path):
  cfg = {**small_cfg(rounds=1), "oracle": "human"}
  truth = truth_of(cfg)
  work = str(tmp_path / "w")
  experiment.run_experiment(cfg, work, log=lambda m: None)
  path = os.path.join(work, "round_000", "labels.csv")
  asked = [int(l.split(",")[0]) for l in open(path) if l[0].isdigit()]
  fill_csv(path, lambda i: truth[i] if i in asked[:2] else "")
  res = experiment.run_experiment(cfg, work, log=lambda m: None)
  assert f"{path}: 2 of 4 lines have no answer yet (lines 7, 8); nothing was used" in res["paused"]
  text = open(path).read()
  open(path, "w").write(text.replace(f"\n{asked[2]},,", f"\n{asked[2]},sevn,"))
  with pytest.raises(human.LabelFileError,
                     match=re.escape(f"{path} line 7: unknown label 'sevn'; accepted: ")):
    experiment.run_experiment(cfg, work, log=lambda m: None)
  open(path, "w").write(text + f"{asked[0]},1,images/{asked[0]}.png\n")
  with pytest.raises(human.LabelFileError, match=re.escape(
      f"{path} line 9: image index {asked[0]} is listed twice (also on line 5).")):
    experiment.run_experiment(cfg, work, log=lambda m: None)
  assert not os.listdir(os.path.join(work, "checkpoints", "entropy"))  # no round was told
  open(path, "w").write(text)
  fill_csv(path, lambda i: truth[i] if i != asked[3] else "skip")
  res = experiment.run_experiment(cfg, work, log=lambda m: None)
  rounds = res["runs"][0]["rounds"]
  assert "paused" not in res and [r["labels"] for r in rounds] == [10, 13]
  assert rounds[0]["skipped"] == [asked[3]] and rounds[1]["interactions"] == 3


@pytest.mark.slow
def test_cluster_review_by_a_scripted_expert_equals_the_simulated_cluster_expert(tmp_path):
  cfg = small_cfg(strategies="entropy+cluster", clusters_per_round=3, cluster_size=40,
                  epochs=3)
  truth = truth_of(cfg)
  want = experiment.run_experiment(cfg, str(tmp_path / "sim"), log=lambda m: None)

  def expert(rdir, c):
    """The simulated expert's rule: the modal true class when it reaches --purity."""
    members = [int(i) for i in open(os.path.join(rdir, "clusters", f"{c:03d}.txt")).read().split()]
    (label, top), = collections.Counter(truth[i] for i in members).most_common(1)
    return label if top >= cfg["purity"] * len(members) * (1 - 1e-6) else "decline"

  work = str(tmp_path / "person")
  got, _ = answer_rounds({**cfg, "oracle": "human"}, work, lambda i: truth[i], expert)
  assert without_extras(got) == without_extras(want)
  rows = got["runs"][0]["rounds"]
  assert sum(r["clusters_accepted"] for r in rows[:-1]) > 0 and rows[0]["clusters_shown"] == 3
  a, b = final_state(work, "entropy+cluster"), final_state(str(tmp_path / "sim"),
                                                           "entropy+cluster")
  np.testing.assert_array_equal(a["labels"], b["labels"])
  montage = os.path.join(work, "round_000", "clusters")
  assert sorted(f for f in os.listdir(montage) if f.endswith(".png"))  # one montage per cluster


# --------------------------------------------------------------------------------------------------
# --oracle=terminal: driven through its input stream


class Person(io.TextIOBase):
  """A stdin that answers from `plan`: "true" answers the true class of the image on screen, any
  other text is typed as is; when the plan runs out, input ends."""

  def __init__(self, screen: io.StringIO, truth: dict, plan: list[str]):
    super().__init__()
    self.screen, self.truth, self.plan = screen, truth, list(plan)

  def readline(self, size=-1):
    if not self.plan:
      return ""
    step = self.plan.pop(0)
    if step == "true":
      step = self.truth[int(re.findall(r"image #(\d+)", self.screen.getvalue())[-1])]
    return step + "\n"


@pytest.mark.slow
def test_terminal_wrong_label_skip_undo_quit_then_resume(tmp_path):
  cfg = {**small_cfg(), "oracle": "terminal"}
  truth = truth_of(cfg)
  work = str(tmp_path / "w")
  screen = io.StringIO()
  first = experiment.run_experiment(
      cfg, work, log=lambda m: None, stdout=screen,
      stdin=Person(screen, truth, ["banana", "true", "s", "u", "?", "true", "q"]))
  shown = screen.getvalue()
  assert ("'banana' is not an answer here; accepted: a class number 0-9 or name (0, 1, 2, 3, 4, 5, "
          "6, 7, 8, 9), s skip, ? unsure, u undo, q save and quit.") in shown
  asked = [int(i) for i in re.findall(r"\[\d+/4\] image #(\d+)", shown)]
  a = list(dict.fromkeys(asked))
  # 1st: banana, re-asked, true; 2nd: skip; 3rd: undo, back to the 2nd: unsure; 3rd: true;
  # 4th: quit.
  assert asked == [a[0], a[0], a[1], a[2], a[1], a[2], a[3]]
  assert "paused" in first and "saved; run the same command again" in shown
  lines = open(os.path.join(work, "round_000", "labels.csv")).read().splitlines()
  assert [l.split(",")[:2] for l in lines if l[0].isdigit()] == [
      [str(a[0]), truth[a[0]]], [str(a[1]), "unsure"], [str(a[2]), truth[a[2]]], [str(a[3]), ""]]
  assert not os.listdir(os.path.join(work, "checkpoints", "entropy"))

  screen = io.StringIO()
  done = experiment.run_experiment(
      cfg, work, log=lambda m: None, stdout=screen,
      stdin=Person(screen, truth, ["true", "", "s", "true", "true", "true", ""]))
  assert "paused" not in done
  assert re.findall(r"image #(\d+)", screen.getvalue())[0] == str(a[3])  # resumed at the 4th
  rounds = done["runs"][0]["rounds"]
  assert [r["labels"] for r in rounds] == [10, 13, 16]
  assert [r["interactions"] for r in rounds] == [0, 3, 6]
  assert rounds[0]["unsure"] == [a[1]] and rounds[0]["skipped"] == []
  second = rounds[1]["selected"]
  assert rounds[1]["skipped"] == [second[0]]
  state = final_state(work, "entropy")
  ds = experiment.prepare_dataset(cfg)
  pos = {int(i): p for p, i in enumerate(ds.train_index)}
  want_labeled = {a[0], a[2], a[3], *second[1:]}
  for i in {*a, *second}:
    assert state["labeled"][pos[i]] == (i in want_labeled), i
    if i in want_labeled:
      assert ds.class_names[state["labels"][pos[i]]] == truth[i]
  assert not state["selectable"][pos[a[1]]]  # unsure: out of the pool
  assert state["selectable"][pos[second[0]]]  # skipped: back in the pool
  assert open(os.path.join(work, "unsure.csv")).read() == f"index,round\n{a[1]},0\n"


# --------------------------------------------------------------------------------------------------
# pictures


def test_pictures_enlarge_small_images_sharply_and_show_every_one(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
  big = np.asarray(human.display_image(images[0], 96))
  assert big.shape == (96, 96)
  np.testing.assert_array_equal(big[::12, ::12], images[0][..., 0])  # 12x12 blocks, no blur
  rgb = rng.integers(0, 256, (3, 40, 30, 3), dtype=np.uint8)
  assert human.display_image(rgb[0], 96).size == (60, 80)
  path = human.contact_sheet(images, [f"#{i}" for i in range(5)], str(tmp_path / "q.png"),
                             title=["round 0"], cell=96)
  from PIL import Image
  sheet = np.asarray(Image.open(path).convert("L"))
  # Every image is pasted whole somewhere in the sheet.
  for im in images:
    tile = np.asarray(human.display_image(im, 96))
    hits = np.argwhere(sheet == tile[0, 0])
    assert any((sheet[y:y + 96, x:x + 96].shape == tile.shape
                and (sheet[y:y + 96, x:x + 96] == tile).all()) for y, x in hits)


# --------------------------------------------------------------------------------------------------
# the command line


def run_cli(*args, stdin=""):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=ROOT, env=env,
                        input=stdin, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args,message", [
    (["--oracle=human"], "error: --oracle=human: a person labels one run; set --seeds=1 (got 3) "
     "and a single name in --strategies (got 4: random,entropy,least_confidence,margin)."),
    (["--oracle=terminal", "--seeds=1", "--strategies=cluster+entropy"],
     "error: --oracle=terminal with --strategies=cluster+entropy: the images of cluster+<score>"),
    (["--oracle=person"], "error: --oracle: unknown oracle 'person'; accepted: simulated, human, "
     "terminal, web."),
    (["--oracle=human", "--seeds=1", "--strategies=margin", "--checkpoint_every=0"],
     "error: --oracle=human saves after every round: --checkpoint_every must be 1, got 0."),
])
@pytest.mark.slow
def test_cli_refuses_oracle_settings_with_one_line(tmp_path, args, message):
  p = run_cli(*args, f"--workdir={tmp_path / 'w'}")
  lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
  assert p.returncode != 0 and len(lines) == 1 and lines[0].startswith(message), p.stderr


@pytest.mark.slow
def test_cli_human_stops_with_instructions_then_the_terminal_takes_over(tmp_path):
  work = tmp_path / "w"
  args = ("--seeds=1", "--strategies=margin", "--rounds=1", "--epochs=1", "--query_size=3",
          "--initial_size=10", "--val_size=20", f"--workdir={work}")
  p = run_cli("--oracle=human", *args)
  assert p.returncode == 3, p.stderr  # waiting for answers
  assert "round 0/1 waits for your answers" in p.stdout and "results written" not in p.stdout
  assert (work / "round_000" / "query.png").exists()
  assert len(list((work / "round_000" / "images").glob("*.png"))) == 3
  p = run_cli("--oracle=terminal", *args, stdin="0\n1\n2\n\n")  # same run, answered in a terminal
  assert p.returncode == 0, p.stderr
  assert "[3/3] image #" in p.stdout and "results written" in p.stdout
  res = json.loads((work / "results.json").read_text())
  assert [r["labels"] for r in res["runs"][0]["rounds"]] == [10, 13]
