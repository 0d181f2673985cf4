"""The layers of the package stay layers: no import circle, no module over 300 lines."""

import ast
import os

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "anomaly_toolbox")
# A layer may import only the layers listed for it (and the top-level helper modules).
ALLOWED = {"data": set(), "models": set(), "run": {"data", "models"},
           "bench": {"data", "models", "run"}}


def _modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def _layer(path):
    parts = os.path.relpath(path, PACKAGE).split(os.sep)
    return parts[0] if len(parts) > 1 else None


def _imported_layers(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "anomaly_toolbox" and len(parts) > 1 and parts[1] in ALLOWED:
                yield parts[1]


def test_layers_import_only_the_layers_below_them():
    for path in _modules():
        layer = _layer(path)
        if layer is None:
            continue
        bad = {l for l in _imported_layers(path) if l != layer and l not in ALLOWED[layer]}
        assert not bad, f"{os.path.relpath(path, PACKAGE)} imports {bad}"


def test_no_module_over_300_lines():
    long = {os.path.relpath(p, PACKAGE): n for p in _modules()
            if (n := sum(1 for _ in open(p))) > 300}
    assert not long, long
