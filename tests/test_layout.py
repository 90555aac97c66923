"""The package's shape: no import cycle among jaxal's modules (function-local imports included),
no module over 400 lines without a reason written at its top, the human oracle below the driver,
and a small one-level public API."""
import ast
import os

import jaxal

ROOT = os.path.dirname(os.path.abspath(jaxal.__file__))
MAX_LINES = 400


def _modules() -> dict[str, str]:
  """module name -> path, for every .py file under jaxal/."""
  found = {}
  for folder, _, files in os.walk(ROOT):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(folder, f)
        rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
        found[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
  return found


def _imports(path: str, name: str, modules: dict[str, str]) -> set[str]:
  """The jaxal modules `path` imports anywhere in its body (module level or inside functions)."""
  tree = ast.parse(open(path).read())
  package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name in modules)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = package.split(".")
        base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
      for a in node.names:
        full = f"{base}.{a.name}"
        if full in modules:
          out.add(full)
        elif base in modules:
          out.add(base)
  out.discard(name)
  return {m for m in out if m.startswith("jaxal")}


def _graph():
  modules = _modules()
  return {m: _imports(p, m, modules) for m, p in modules.items()}


def _cycle(graph):
  """One import cycle as a list of modules, or None. Edges into a package's own `__init__` from
  its submodules are how Python loads them, not a cycle of ideas; the top-level `jaxal` (the
  public API, which imports everything) is left out the same way."""
  colour, stack = {}, []

  def visit(m):
    colour[m] = 1
    stack.append(m)
    for n in sorted(graph.get(m, ())):
      if n == "jaxal" or m.startswith(n + "."):
        continue
      if colour.get(n) == 1:
        return stack[stack.index(n):] + [n]
      if not colour.get(n):
        found = visit(n)
        if found:
          return found
    stack.pop()
    colour[m] = 2
    return None

  for m in sorted(graph):
    if m != "jaxal" and not colour.get(m):
      found = visit(m)
      if found:
        return found
  return None


def test_no_import_cycle_among_jaxal_modules():
  assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_the_cycle_finder_finds_a_cycle():
  assert _cycle({"jaxal.a": {"jaxal.b"}, "jaxal.b": {"jaxal.c"}, "jaxal.c": {"jaxal.a"}}) == [
      "jaxal.a", "jaxal.b", "jaxal.c", "jaxal.a"]
  assert _cycle({"jaxal.a": {"jaxal.b"}, "jaxal.b": set()}) is None


def _reaches(graph, start, target):
  seen, todo = set(), [start]
  while todo:
    m = todo.pop()
    if m == target:
      return True
    if m not in seen:
      seen.add(m)
      todo.extend(n for n in graph.get(m, ()) if n != "jaxal")
  return False


def test_the_human_oracle_sits_below_the_driver():
  graph = _graph()
  for m in graph:
    if m.startswith("jaxal.human"):
      assert not _reaches(graph, m, "jaxal.driver"), m
  for m in ("jaxal.round", "jaxal.acquisition", "jaxal.annotation", "jaxal.strategies",
            "jaxal.driver", "jaxal.training", "jaxal.scoring"):
    assert not any(_reaches(graph, m, h) for h in graph if h.startswith("jaxal.human")), m


def test_the_library_never_looks_strategies_up_by_name():
  graph = _graph()
  for m in ("jaxal.round", "jaxal.acquisition", "jaxal.annotation", "jaxal.driver",
            "jaxal.strategies"):
    assert not _reaches(graph, m, "jaxal.registry"), m


def test_modules_over_400_lines_say_why_at_their_top():
  long = []
  for name, path in _modules().items():
    text = open(path).read()
    lines = text.count("\n")
    doc = ast.get_docstring(ast.parse(text)) or ""
    if lines > MAX_LINES and "Why this module is long:" not in doc:
      long.append(f"{name} ({lines} lines)")
  assert not long, long


def test_the_public_api_is_one_level_and_small():
  assert len(jaxal.__all__) <= 30
  for name in jaxal.__all__:
    assert hasattr(jaxal, name), name
