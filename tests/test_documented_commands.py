"""Every command the documentation prints (README, docs/, the models' READMEs, benchmarks.md,
benchmarks/README.md) names a module that exists and flags that module defines, with values its
flags accept: a renamed module or flag fails here, not in a reader's shell. Benchmark commands
are `python -m benchmarks.<tool>`, run from the repository root."""

import glob
import importlib
import os
import re
import shlex

import pytest
from absl import flags

from anomaly_toolbox.__main__ import COMMANDS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", "benchmarks.md", "benchmarks/README.md",
        *sorted(os.path.relpath(p, REPO) for pattern in ("docs/*.md", "anomaly_toolbox/models/README_*.md")
                for p in glob.glob(os.path.join(REPO, pattern)))]
START = re.compile(r"(python -m (anomaly_toolbox|benchmarks)\b[\w.]*|anomaly-toolbox [a-z]+)")


def _commands(text):
    """Commands in fenced and indented code (lines, `\\` continued) and in inline code spans."""
    found = []
    parts = text.split("```")
    for i, part in enumerate(parts):
        if i % 2:  # a fenced block
            lines = part.replace("\\\n", " ").splitlines()
        else:
            lines = [line for line in part.replace("\\\n", " ").splitlines() if line.startswith("    ")]
            lines += re.findall(r"`([^`]+)`", part.replace("\n", " "))
        for line in lines:
            for piece in re.split(r"&&|\||;", line.split("  #")[0]):
                if START.match(piece.strip()):  # a command, not a module named in a sentence
                    found.append(piece.strip())
    return found


def _documented():
    out = []
    for doc in DOCS:
        with open(os.path.join(REPO, doc)) as f:
            out += [(doc, c) for c in _commands(f.read())]
    return out


def _module(command):
    words = command.split()
    if words[0] == "python":
        return words[2], words[3:]
    if words[1] not in COMMANDS:
        pytest.fail(f"{command!r}: no command {words[1]!r} (one of {', '.join(COMMANDS)})")
    return COMMANDS[words[1]][0], words[2:]


def test_the_docs_print_commands_of_every_kind():
    modules = {_module(c)[0] for _, c in _documented()}
    assert {"anomaly_toolbox.train", "anomaly_toolbox.score", "anomaly_toolbox.ensemble", "anomaly_toolbox.export",
            "benchmarks.benchmark", "benchmarks.campaign", "benchmarks.sweep", "benchmarks.speed"} <= modules


@pytest.mark.parametrize("doc,command", _documented())
def test_a_documented_command_parses(doc, command):
    name, args = _module(command)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError:
        pytest.fail(f"{doc}: {command!r}: no module {name}")
    assert hasattr(module, "define_flags"), f"{doc}: {name} is not an entry point"
    args = [a for a in shlex.split(" ".join(args)) if "$" not in a and a not in ("--help", "-h", "...")]
    assert all(a.startswith("--") for a in args), f"{doc}: {command!r}: a positional argument"
    before = set(flags.FLAGS)
    module.define_flags()
    defined = set(flags.FLAGS) - before
    try:
        unknown = [a for a in args if a[2:].split("=")[0] not in defined
                   and not (a.startswith("--no") and a[4:] in defined)]
        assert not unknown, f"{doc}: {command!r}: {name} defines no {unknown}"
        flags.FLAGS(["prog", *args], known_only=False)  # values of the right type and enum
    finally:
        flags.FLAGS.unparse_flags()
        for flag in defined:
            delattr(flags.FLAGS, flag)


def test_the_readmes_test_command_is_what_ci_runs():
    with open(os.path.join(REPO, ".ci", "run")) as f:
        lines = f.read().splitlines()
    command = lines[lines.index("# The README's test command, verbatim:") + 1]
    with open(os.path.join(REPO, "README.md")) as f:
        assert f"```bash\n{command}\n```" in f.read()
