import os
import shutil
import tempfile

_OWN_CACHE = []

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_configure(config):
  """One persistent XLA compilation cache for the whole test run (both xdist workers and the
  command-line runs the tests start inherit it), so a program that several tests compile is
  compiled once. It starts empty every run (a fresh temporary folder), so the suite's time never
  depends on an earlier run; `JAXAL_TEST_CACHE` names another folder. Cached executables are the
  same programs, so results are unchanged (the golden tests compare them bit for bit)."""
  if getattr(config.option, "maxschedchunk", "absent") is None:
    config.option.maxschedchunk = 1   # xdist: one test at a time (see HEAVY_FIRST below)
  if hasattr(config, "workerinput") or "JAX_COMPILATION_CACHE_DIR" in os.environ:
    return   # an xdist worker: the controller set the folder before starting it
  folder = os.environ.get("JAXAL_TEST_CACHE")
  if not folder:
    folder = tempfile.mkdtemp(prefix="jaxal-xla-cache-")
    _OWN_CACHE.append(folder)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")


def pytest_unconfigure(config):
  del config
  for folder in _OWN_CACHE:
    shutil.rmtree(folder, ignore_errors=True)


# Tests that take about 20 s or more on the 2-core machine (`--durations`), longest first. They
# are run first, and xdist hands out one test at a time (`--maxschedchunk=1` unless given), so the
# two workers end on short tests instead of one of them finishing a long test alone. An entry
# names a test (all its parameters) or, ending in `[...]`, one parametrization. Tests that share
# an expensive module fixture (test_checkpointing's `uninterrupted` run) are left in place so the
# fixture is not set up twice.
HEAVY_FIRST = (
    "tests/test_pretrain.py::test_pretraining_resumes_bit_for_bit_after_a_kill",
    "tests/test_golden.py::test_golden_results_are_reproduced_bit_for_bit[diversity]",
    "tests/test_multihost.py::test_two_processes_killed_and_resumed_select_what_one_process_selects",
    "tests/test_sharded_round.py::test_mesh_auto_on_eight_devices_selects_what_one_device_selects",
    "tests/test_benchmark.py::test_fmnist_bald_workload_runs_the_protocol_and_its_phases_agree",
    "tests/test_round.py::test_vmap_and_map_over_seeds_give_the_same_run",
    "tests/test_presets.py::test_preset_runs_at_smoke_scale[cluster_cifar10]",
    "tests/test_sharded_round.py::test_pool_beyond_a_small_device_budget_streams_and_selects_what_memory_selects",
    "tests/test_human.py::test_cluster_review_by_a_scripted_expert_equals_the_simulated_cluster_expert",
    "tests/test_faults.py::test_ctrl_c_exits_130_without_a_traceback_and_the_run_resumes",
    "tests/test_sharded_round.py::test_mesh_with_a_seeds_axis_selects_what_one_device_selects",
    "tests/test_benchmark.py::test_pool_scale_runs_the_loop_on_a_host_pool_and_selects_what_the_in_memory_run_selects",
    "tests/test_unlabeled.py::test_label_command_with_files_and_a_label_studio_export",
    "tests/test_golden.py::test_golden_results_are_reproduced_bit_for_bit[cluster]",
    "tests/test_human.py::test_labels_csv_filled_by_a_script_continues_exactly_as_the_simulated_oracle",
    "tests/test_web_browser.py::test_label_two_rounds_in_the_browser",
    "tests/test_progress.py::test_progress_rounds_keeps_the_programs_in_the_compilation_cache",
    "tests/test_golden.py::test_golden_results_are_reproduced_bit_for_bit[ensemble]",
    "tests/test_golden.py::test_golden_results_are_reproduced_bit_for_bit[default]",
    "tests/test_run_cli.py::test_small_run_writes_the_results_directory",
    "tests/test_presets.py::test_preset_runs_at_smoke_scale[hybrid_cifar10]",
    "tests/test_golden.py::test_golden_results_are_reproduced_bit_for_bit[subset_bestval]",
    "tests/test_presets.py::test_preset_runs_at_smoke_scale[constrained_ideal]",
    "tests/test_golden.py::test_golden_results_are_reproduced_bit_for_bit[bald]",
    "tests/test_presets.py::test_preset_runs_at_smoke_scale[four_metrics_fruits]",
    "tests/test_initial.py::test_initial_by_strategy_end_to_end_and_the_default_is_unchanged",
    "tests/test_run_cli.py::test_bayesian_flags_run_end_to_end",
    "tests/test_golden.py::test_golden_results_are_reproduced_bit_for_bit[hybrid]",
)


def _heavy_rank(nodeid):
  for rank, entry in enumerate(HEAVY_FIRST):
    if nodeid == entry or (not entry.endswith("]") and nodeid.startswith(entry + "[")):
      return rank
  return len(HEAVY_FIRST)


def pytest_collection_modifyitems(config, items):
  """The heavy tests first, longest first; the others keep their order (a stable sort)."""
  del config
  items.sort(key=lambda item: _heavy_rank(item.nodeid))
