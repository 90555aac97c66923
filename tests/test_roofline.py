"""The roofline's arithmetic (jaxal/cli/benchmarks/roofline.py) against hand-worked cases, and XLA's
cost analysis against the operation counts of a matrix product and an elementwise pass."""
import math

import jax.numpy as jnp
import pytest

from jaxal.cli.benchmarks import roofline


def test_cost_counts_a_matmul_as_two_mnk_flops_and_its_operands_as_bytes():
  m, k, n = 64, 32, 16
  flops, nbytes = roofline.cost(lambda a, b: a @ b, jnp.ones((m, k)), jnp.ones((k, n)))
  assert flops == 2 * m * k * n
  assert nbytes == 4 * (m * k + k * n + m * n)        # both inputs read, the output written


def test_cost_of_an_elementwise_pass_reads_and_writes_the_array_once():
  flops, nbytes = roofline.cost(lambda v: v * 2.0 + 1.0, jnp.ones((1000,)))
  assert nbytes == 2 * 4 * 1000 and flops == pytest.approx(2000, rel=0.01)


def test_classify_a_compute_bound_phase():
  # 100 GFLOP over 1 GB in 2 s on a machine of 200 GFLOP/s and 50 GB/s: intensity 100 flop/byte
  # > balance 4, so the roof is the 200 GFLOP/s peak and the phase reached 50 of it.
  r = roofline.classify(100e9, 1e9, 2.0, peak_gflops=200.0, bandwidth_gbs=50.0)
  assert r["bound"] == "compute" and r["intensity"] == 100.0
  assert r["gflops"] == 50.0 and r["gbs"] == 0.5
  assert r["share_of_peak"] == 0.25 and r["share_of_roof"] == 0.25
  assert r["share_of_bandwidth"] == 0.01


def test_classify_a_memory_bound_phase_uses_the_sloped_roof():
  # 1 GFLOP over 10 GB in 0.5 s: intensity 0.1 < balance 4, roof 50 GB/s x 0.1 = 5 GFLOP/s; the
  # phase ran 2 GFLOP/s = 40% of it and moved 20 GB/s.
  r = roofline.classify(1e9, 10e9, 0.5, peak_gflops=200.0, bandwidth_gbs=50.0)
  assert r["bound"] == "memory"
  assert r["gflops"] == 2.0 and r["gbs"] == 20.0
  assert r["share_of_roof"] == pytest.approx(0.4) and r["share_of_bandwidth"] == 0.4


def test_classify_names_a_phase_far_under_both_roofs_neither():
  # 1 GFLOP over 0.1 GB in 1 s: roof min(200, 50 x 10) = 200 GFLOP/s, reached 0.5%.
  r = roofline.classify(1e9, 0.1e9, 1.0, peak_gflops=200.0, bandwidth_gbs=50.0)
  assert r["bound"] == "neither" and r["share_of_roof"] == pytest.approx(0.005)


def test_table_sums_the_rounds_of_each_phase():
  rows = roofline.table({"train": (3e9, 1e9)}, {"train": [0.5, 0.25, 0.25]}, 100.0, 10.0)
  assert rows[0]["phase"] == "train" and rows[0]["seconds"] == 1.0
  assert rows[0]["gflops"] == 3.0 and math.isclose(rows[0]["intensity"], 3.0)


def test_machine_limits_are_measured_and_the_best_bandwidth_is_the_faster_pass():
  peak = roofline.measure_peak(n=256, repeats=2)
  bw = roofline.measure_bandwidth(mbytes=8, repeats=2)
  assert peak > 0 and bw["best"] == max(bw["read_write_gbs"], bw["read_gbs"]) > 0


def test_table_reports_the_models_own_flops_beside_the_executed_ones():
  rows = roofline.table({"score": (6e9, 1e9)}, {"score": [2.0]}, 100.0, 10.0,
                        model_units={"score": (1.5e9, 1e9)})
  assert rows[0]["gflops"] == 3.0 and rows[0]["model_gflop"] == 1.5
  assert rows[0]["model_gflops"] == 0.75
