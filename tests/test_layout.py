"""The package's layers stay layers: the data, models and run layers import only the layers
below them; the CLI modules form the top layer, which no other module imports (the API
included); no import cycle; the package never imports the research project `benchmarks/`; no
module over 300 lines, in the package or in `benchmarks/`."""

import ast
import functools
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "anomaly_toolbox")
BENCHMARKS = os.path.join(REPO, "benchmarks")
# A layer may import only the layers listed for it (and the top-level helper modules).
ALLOWED = {"data": set(), "models": set(), "run": {"data", "models"}}
# The commands (train, score, export, ensemble) and their shared shape: the top layer.
CLI = {"anomaly_toolbox.train", "anomaly_toolbox.score", "anomaly_toolbox.export",
       "anomaly_toolbox.ensemble", "anomaly_toolbox.cli", "anomaly_toolbox.__main__"}
MAX_LINES = 300


def _files(root):
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def _module_name(path, root=PACKAGE):
    relative = os.path.relpath(path, os.path.dirname(root))[:-len(".py")]
    return relative.replace(os.sep, ".").removesuffix(".__init__")


@functools.lru_cache
def _parsed(root):
    return {_module_name(path, root): ast.parse(open(path).read(), path) for path in _files(root)}


def _modules(root=PACKAGE):
    """{dotted name: parsed module} of every .py file under `root` (a copy to plant into)."""
    return dict(_parsed(root))


def _imported(node, known):
    """The dotted module names an import statement names; `from P import n` is P.n when that
    is a module of `known`, else P."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                for a in node.names]
    return []


def _imports(tree, known, top_level_only=False):
    """What a module imports: anywhere (functions too), or only when it is imported (module-
    level statements, including those inside module-level if/try)."""
    if not top_level_only:
        nodes = ast.walk(tree)
    else:
        nodes, todo = [], list(tree.body)
        while todo:
            node = todo.pop()
            nodes.append(node)
            if isinstance(node, (ast.If, ast.Try, ast.With)):
                todo += [n for field in ("body", "orelse", "finalbody", "handlers")
                         for n in getattr(node, field, [])]
            elif isinstance(node, ast.ExceptHandler):
                todo += node.body
    return {name for node in nodes for name in _imported(node, known)}


def _layer(name):
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def layer_violations(modules):
    bad = {}
    for name, tree in modules.items():
        layer = _layer(name)
        if layer is None:
            continue
        imported = {_layer(i) for i in _imports(tree, modules) if i.startswith("anomaly_toolbox.")}
        wrong = {l for l in imported if l and l != layer and l not in ALLOWED.get(layer, ())}
        if layer not in ALLOWED:
            wrong.add(f"{layer} (a subpackage that is no layer)")
        if wrong:
            bad[name] = wrong
    return bad


def cli_violations(modules):
    """Non-CLI modules (api.py included) that import a CLI module, even inside a function."""
    return {name: found for name, tree in modules.items() if name not in CLI
            and (found := {i for i in _imports(tree, modules) if i in CLI})}


def benchmarks_violations(modules):
    return {name: found for name, tree in modules.items()
            if (found := {i for i in _imports(tree, modules)
                          if i == "benchmarks" or i.startswith("benchmarks.")})}


def import_cycle(modules):
    """One cycle of the package's import graph (module-level imports), or None."""
    graph = {name: {i for i in _imports(tree, modules, top_level_only=True) if i in modules}
             for name, tree in modules.items()}
    state, path = {}, []

    def visit(name):
        state[name] = "open"
        path.append(name)
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                return path[path.index(other):] + [other]
            if other not in state and (cycle := visit(other)):
                return cycle
        state[name] = "done"
        path.pop()
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def long_modules(root):
    return {os.path.relpath(p, REPO): n for p in _files(root)
            if (n := sum(1 for _ in open(p))) > MAX_LINES}


def test_layers_import_only_the_layers_below_them():
    assert not layer_violations(_modules())


def test_no_module_but_the_commands_imports_a_command_module():
    modules = _modules()
    assert CLI <= set(modules), CLI - set(modules)
    assert not cli_violations(modules)


def test_no_import_cycle():
    assert import_cycle(_modules()) is None


def test_the_package_never_imports_benchmarks():
    assert not benchmarks_violations(_modules())


@pytest.mark.parametrize("root", [PACKAGE, BENCHMARKS], ids=["anomaly_toolbox", "benchmarks"])
def test_no_module_over_300_lines(root):
    if not os.path.isdir(root):
        pytest.skip(f"{os.path.relpath(root, REPO)}/ is not in this tree")
    assert not long_modules(root)


def test_each_check_finds_a_planted_violation():
    """Each check above can fail: a copy of the real modules with one violation planted."""
    modules = _modules()
    plant = lambda name, code: {**modules, name: ast.parse(code)}
    assert layer_violations(plant("anomaly_toolbox.data.x", "from anomaly_toolbox.run import rundir"))
    assert cli_violations(plant("anomaly_toolbox.api", "def f():\n    from anomaly_toolbox import score"))
    assert cli_violations(plant("anomaly_toolbox.run.x", "import anomaly_toolbox.cli"))
    assert benchmarks_violations(plant("anomaly_toolbox.x", "def f():\n    import benchmarks.report"))
    cycle = import_cycle(plant("anomaly_toolbox.errors", "from anomaly_toolbox import config"))
    assert cycle[0] == cycle[-1] and set(cycle) == {"anomaly_toolbox.config", "anomaly_toolbox.errors"}
    assert import_cycle(plant("anomaly_toolbox.errors", "def f():\n    from anomaly_toolbox import config")) is None
