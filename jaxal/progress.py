"""What a run shows while it runs: the round's phase (train / evaluate / select) with the seconds
spent in it and the share of the round's phase boundaries already passed, the training loss, and
once rounds have been timed the ETA of the strategy and of the strategies still to run.

    reporter = jaxal.progress.Reporter(sys.stdout)
    jaxal.run(round_fn, pool, test, seeds, splits, progress=reporter)

A round is one compiled program, so the host only sees its phases through callbacks: a round made
with `progress_hooks=True` (`driver.run` does this when given a reporter) calls `phase_callback` at
each phase boundary (`jax.debug.callback`, once per seed), which forwards to the reporter made
`active`. Without the hooks the program is exactly the one without progress; the callbacks only read
values, so selections and accuracies are the same with and without them.

On a terminal the status line is redrawn in place (`\\r`); on a pipe or file a plain line is written
only for slow rounds (at most one every `plain_every` seconds), so logs stay short.

`DivergenceWatch` flags a training loss that is not finite, or grows more than 100x from the first
round, or is 100x the loss of a uniform prediction (ln C).
"""
from __future__ import annotations

import contextlib
import math
import statistics
import sys
import threading
import time
from typing import Callable, Sequence, TextIO

import numpy as np

# Phases a seed passes in a round: step rounds train, evaluate and select; the final round does not
# select.
STEP_PHASES = ("train", "evaluate", "select")
FINAL_PHASES = ("train", "evaluate")

_active: "Reporter | None" = None


def phase_callback(name: str, *values) -> None:
  """Called from inside compiled rounds (`Round._phase`) when phase `name` starts for one seed;
  `values` are the device values the boundary waited for (for "evaluate": the training loss)."""
  reporter = _active
  if reporter is not None:
    reporter.phase(name, *values)


@contextlib.contextmanager
def active(reporter: "Reporter | None"):
  """Routes the phase callbacks of compiled rounds to `reporter` inside the block."""
  global _active
  previous, _active = _active, reporter
  try:
    yield reporter
  finally:
    _active = previous


def format_seconds(seconds: float) -> str:
  """4.2s, 3m05s, 2h07m."""
  seconds = max(0.0, float(seconds))
  if seconds < 60:
    return f"{seconds:.1f}s"
  if seconds < 3600:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s"
  h, m = divmod(int(round(seconds / 60)), 60)
  return f"{h}h{m:02d}m"


class DivergenceWatch:
  """Warns once: the first time `update` sees a loss that is not finite, more than `factor` times
  the first round's loss of the same seed, or more than `factor` * ln(num_classes)."""

  def __init__(self, factor: float = 100.0, num_classes: int | None = None):
    self.factor = factor
    self.ceiling = factor * math.log(num_classes) if num_classes and num_classes > 1 else None
    self.first: np.ndarray | None = None
    self.warned = False

  def update(self, round_: int, losses) -> str | None:
    """The warning (once), or None."""
    losses = np.atleast_1d(np.asarray(losses, np.float64))
    if self.first is None:
      self.first = losses.copy()
    if self.warned:
      return None
    why = None
    if not np.all(np.isfinite(losses)):
      why = "is not finite"
    elif np.any(losses > self.factor * np.abs(self.first)) and np.all(np.isfinite(self.first)):
      why = f"grew more than {self.factor:g}x from round 0 ({np.max(self.first):.3g})"
    elif self.ceiling is not None and np.any(losses > self.ceiling):
      why = (f"is more than {self.factor:g}x the loss of a uniform prediction "
             f"({self.ceiling / self.factor:.3g})")
    if why is None:
      return None
    self.warned = True
    return (f"training diverges: train_loss {_loss_text(losses)} at round {round_} {why}; "
            "lower the learning rate")


def _loss_text(losses) -> str:
  losses = np.atleast_1d(np.asarray(losses, np.float64))
  if not np.all(np.isfinite(losses)):
    return "nan" if np.any(np.isnan(losses)) else "inf"
  return f"{float(np.mean(losses)):.3g}"


class Reporter:
  """The live status of a run, written to `stream`.

  The driver calls `start_strategy`, then per round `start_round` ... `end_round` (compiled
  rounds call `phase` in between), then `finish_strategy`. `line()` is the status text; `eta()` the
  estimates. `clock` is injectable for tests; `tick` (seconds, None = off) redraws the line from a
  background thread so the seconds count up between callbacks."""

  def __init__(self, stream: TextIO | None = None, *, live: bool | None = None,
               clock: Callable[[], float] = time.perf_counter, plain_every: float = 30.0,
               tick: float | None = 1.0, strategies_after: int = 0):
    self.stream = stream
    if live is None:
      isatty = getattr(stream, "isatty", None)
      try:
        live = bool(isatty and isatty())
      except (ValueError, OSError):
        live = False
    self.live = live
    self.clock = clock
    self.plain_every = plain_every
    self.tick = tick
    self.strategies_after = strategies_after   # strategies still to run after the current one
    self.first_rounds: list[float] = []        # the first (compiling) round of each strategy
    self.round_medians: list[float] = []       # the median round of each finished strategy
    self._lock = threading.RLock()
    self._ticker: threading.Thread | None = None
    self._stop = threading.Event()
    self.name, self.rounds, self.seeds = "", 0, 1
    self.round: int | None = None
    self.start = self.last_done = 0
    self.durations: list[float] = []
    self._drawn = 0
    self._last_plain = None

  @classmethod
  def for_terminal(cls, stream: TextIO | None = None, **kwargs) -> "Reporter":
    """A reporter on `stream` (default: the process's standard output)."""
    return cls(stream if stream is not None else sys.stdout, **kwargs)

  # -- driven by the driver -------------------------------------------------------------------

  def start_strategy(self, name: str, rounds: int, *, seeds: int = 1, start: int = 0) -> None:
    with self._lock:
      self.name, self.rounds, self.seeds, self.start = name, rounds, max(1, seeds), start
      self.durations, self.round, self.loss, self.last_done = [], None, None, start - 1

  def start_round(self, round_: int, *, final: bool = False, compiling: bool = False) -> None:
    """Round `round_` starts (`final`: the last training, no selection); `compiling`: its program
    compiles first, shown until the first phase starts."""
    with self._lock:
      self.round, self.final = round_, final
      self.round_start = self.phase_start = self.clock()
      self.phase_name = "compiling" if compiling else "starting"
      self.events, self.loss, self._losses = 0, None, 0
      self.total_events = self.seeds * len(FINAL_PHASES if final else STEP_PHASES)
      self._last_plain = self.round_start
    if self.tick and self._ticker is None:
      self._stop.clear()
      self._ticker = threading.Thread(target=self._tick, name="jaxal-progress", daemon=True)
      self._ticker.start()

  def phase(self, name: str, *values) -> None:
    """A seed's phase `name` starts (from `phase_callback`); for "evaluate" the value is the loss."""
    with self._lock:
      if self.round is None:
        return
      self.events += 1
      if name != self.phase_name:
        self.phase_name, self.phase_start = name, self.clock()
      if name == "evaluate" and values:
        loss = float(np.mean(np.asarray(values[0], np.float64)))
        self._losses += 1   # the running mean over seeds
        self.loss = loss if self.loss is None else self.loss + (loss - self.loss) / self._losses
      self.refresh()

  def end_round(self, seconds: float, *, compiled: bool = False) -> None:
    """The round took `seconds`; a compiled round is kept out of the median (its time is mostly
    compilation)."""
    with self._lock:
      if compiled:
        if self.round == self.start:
          self.first_rounds.append(seconds)
      else:
        self.durations.append(seconds)
      if self.round is not None:
        self.last_done = self.round
      self.round = None
      self.clear()

  def finish_strategy(self) -> None:
    with self._lock:
      if self.durations:
        self.round_medians.append(statistics.median(self.durations))
      self.round = None
      self.clear()
    self.close()

  def close(self) -> None:
    """Stops the ticker thread."""
    thread, self._ticker = self._ticker, None
    if thread is not None:
      self._stop.set()
      if thread is not threading.current_thread():
        thread.join(timeout=5)

  # -- what is shown --------------------------------------------------------------------------

  def median(self) -> float | None:
    """The median time of this strategy's rounds that did not compile, else of earlier ones."""
    if self.durations:
      return statistics.median(self.durations)
    return statistics.median(self.round_medians) if self.round_medians else None

  def eta(self) -> tuple[float, float] | None:
    """(seconds left for this strategy, seconds left for the run) once a round has been timed:
    remaining rounds x median round time; each strategy still to run adds its rounds + 1
    evaluations at the median plus the median first (compiling) round."""
    med = self.median()
    if med is None or not self.durations:
      return None
    current, left = 0.0, self.rounds - self.last_done
    if self.round is not None:
      left = self.rounds - self.round
      current = max(0.0, med - (self.clock() - self.round_start))
    strategy = current + max(0, left) * med
    first = statistics.median(self.first_rounds) if self.first_rounds else med
    others = self.strategies_after * (first + self.rounds * med)
    return strategy, strategy + others

  def eta_text(self) -> str:
    eta = self.eta()
    if eta is None:
      return ""
    text = f"ETA {format_seconds(eta[0])}"
    if self.strategies_after:
      plural = "y" if self.strategies_after == 1 else "ies"
      text += f" (run {format_seconds(eta[1])}, {self.strategies_after} more strateg{plural})"
    return text

  def line(self) -> str:
    """[entropy] round 3/20: train 4.1s, 33%, loss 0.531, ETA 1m20s (...)"""
    with self._lock:
      if self.round is None:
        return ""
      now = self.clock()
      parts = [f"{self.phase_name} {format_seconds(now - self.phase_start)}"]
      if self.events:
        parts.append(f"{100 * (self.events - 1) // max(1, self.total_events)}%")
      if self.loss is not None:
        parts.append(f"loss {self.loss:.3g}")
      eta = self.eta_text()
      if eta:
        parts.append(eta)
      return f"[{self.name}] round {self.round}/{self.rounds}: " + ", ".join(parts)

  def refresh(self) -> None:
    """Redraws the line on a terminal; on a pipe writes it when `plain_every` seconds passed."""
    with self._lock:
      if self.stream is None or self.round is None:
        return
      text = self.line()
      if self.live:
        pad = max(0, self._drawn - len(text))
        self._write("\r" + text + " " * pad)
        self._drawn = len(text)
      elif self.clock() - self._last_plain >= self.plain_every:
        self._write(text + "\n")
        self._last_plain = self.clock()

  def clear(self) -> None:
    """Erases the live line, so the next printed line starts clean."""
    with self._lock:
      if self.live and self._drawn and self.stream is not None:
        self._write("\r" + " " * self._drawn + "\r")
      self._drawn = 0

  def _write(self, text: str) -> None:
    try:
      self.stream.write(text)
      self.stream.flush()
    except (ValueError, OSError):   # a closed stream must not break the run
      pass

  def _tick(self) -> None:
    while not self._stop.wait(self.tick):
      self.refresh()


def watch_losses(losses: Sequence[Sequence[float]], num_classes: int | None = None,
                 factor: float = 100.0) -> list[str]:
  """The warnings a `DivergenceWatch` gives over per-round losses (for tests and reports)."""
  watch = DivergenceWatch(factor, num_classes)
  return [w for r, loss in enumerate(losses) if (w := watch.update(r, loss))]
