"""The shape every command shares (`anomaly-toolbox <command>` and `python -m ...`): flags
defined on demand (importing a command defines none) and checked before TensorFlow is imported,
so a bad argument answers at once; TensorFlow's start-up INFO lines hidden; `--help` on stdout
with exit 0; every user error one `error: ...` line on stderr with exit code 2.

A command is `define_flags()`, `check()` and `body()`. `main` parses the flags, runs `check()`,
which must not import TensorFlow (it calls the same checks `body` would meet, from their
TensorFlow-free homes), then imports TensorFlow quietly and runs `body()`. Importing this module
imports no TensorFlow and changes nothing in the process: that happens in `main`, for commands
only, never for a notebook or script that imports the package. ANOMALY_TOOLBOX_TF_LOGS=1 keeps
TensorFlow's own logs.
"""

import os
import re
import signal
import sys
import tempfile
from time import monotonic

from absl import app, flags, logging

TF_LOGS = "ANOMALY_TOOLBOX_TF_LOGS"
HELP = ("-h", "--help", "--helpshort", "--helpfull", "-?")
# absl prints these before TensorFlow initializes its logging, so TF_CPP_MIN_LOG_LEVEL cannot hide them
_NOISE = re.compile(r"^(I\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog)")
_BAD_VALUE = re.compile(r"^flag --(\w+)=(.*?): (.*)$", re.S)
_UNEXPANDED = re.compile(r"(^|[,:])~")  # ~/x, folder:~/x, a,~/b: left as they are by the shell
_SIGNALLED = []  # the signals that reached this command (_interrupted), in order
_RAISED_AT = []  # when _interrupted raised (time.monotonic)


def import_tensorflow_quietly():
    """Imports TensorFlow with stderr captured, then replays every line but the INFO ones: the
    oneDNN and CPU-feature notices go, warnings and errors stay."""
    if os.environ.get(TF_LOGS) == "1" or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass  # the tool's own import raises it again, with the package's advice
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(l for l in lines if not _NOISE.match(l)))


def command_defaults():
    """TF_ENABLE_ONEDNN_OPTS=1 unless the user set it. TensorFlow turns its oneDNN kernels on only
    for CPUs with AVX-512/AMX; on AVX2 machines they are off, and turning them on made train steps
    1.56-1.61x faster here with deterministic results (benchmarks.md, "Speed: process-level
    settings"). TensorFlow reads it once, when imported, so it is set on the way to a command,
    before that import; a library import leaves the environment alone (it is the user's process).
    Export TF_ENABLE_ONEDNN_OPTS=0 to opt out; results record the value."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def main(define_flags, body, check=None):
    """Defines the command's flags and parses them, runs `check()` (no TensorFlow yet), imports
    TensorFlow quietly and runs `body()`, all under absl with the error contract."""
    command_defaults()
    try:
        signal.signal(signal.SIGTERM, _interrupted)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if ignored (nohup)
            signal.signal(signal.SIGINT, _interrupted)
        define_flags()
        app.run(lambda argv: guarded(lambda: checked_then_run(check, body), argv),
                flags_parser=lambda argv: parse_flags(argv, define_flags, body))
    except KeyboardInterrupt as e:  # while absl parsed the flags, before `guarded` ran
        _exit_interrupted(e)
    finally:
        if _SIGNALLED:  # Python's shutdown restores the default actions: a second copy then
            for number in (signal.SIGTERM, signal.SIGINT):  # killed it (-15) after its message
                signal.signal(number, signal.SIG_IGN)


def checked_then_run(check, body):
    refuse_shell_slips(body.__module__)
    if check is not None:
        check()
    import_tensorflow_quietly()
    if _SIGNALLED:  # an interrupt the import swallowed: pybind11 turns one into ImportError
        raise KeyboardInterrupt(_SIGNALLED[-1])  # ("initialization failed") and a re-import works
    return body()


def refuse_shell_slips(module):
    """`--output_dir=` (an unset shell variable, say) is an error, not the flag's default; and
    so is a path starting with `~`, which the shell leaves as it is after `--flag=` (and after
    `folder:` or a comma): it trained into a folder named `~` in the working directory. A list
    flag given empty is [] (`benchmark --models=` ran no cell, exit 0; `speed --models=` all)."""
    from anomaly_toolbox.errors import UsageError

    for flag in flags.FLAGS.get_flags_for_module(module):
        if flag.present and flag.value in ("", []):
            raise UsageError(flag.name, "", "a value; leave the flag out for its default")
        if flag.present and isinstance(flag.value, str) and _UNEXPANDED.search(flag.value):
            raise UsageError(flag.name, flag.value, "a path without ~: the shell expands it only "
                             "at the start of a word; write $HOME instead")


def parse_flags(argv, define_flags, body):
    if any(arg in HELP for arg in argv[1:]):
        try:
            print(help_text(define_flags, body))
        except BrokenPipeError:  # `--help | head`
            pass
        sys.exit(0)
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {flag_error(e)}", file=sys.stderr)
        sys.exit(2)


def help_text(define_flags, body):
    """The tool's docstring, then its own flags (not absl's dozens of logging flags)."""
    doc = (sys.modules[body.__module__].__doc__ or "").strip()
    return f"{doc}\n\nflags:\n{flags.FLAGS.module_help(define_flags.__module__)}\n"


def flag_error(e):
    """absl's parse errors in the one-line `invalid <arg>: <value> (expected ...)` form."""
    from anomaly_toolbox.errors import UsageError

    if isinstance(e, flags.UnrecognizedFlagError):
        return UsageError("flag", e.flagvalue or e.flagname, "one of the flags --help lists")
    bad_value = _BAD_VALUE.match(str(e))
    if bad_value:
        name, value, reason = bad_value.groups()
        expected = getattr(flags.FLAGS[name].parser, "syntactic_help", "") if name in flags.FLAGS else ""
        return UsageError(name, value, expected or reason.splitlines()[0])
    return UsageError("flags", " ".join(sys.argv[1:]), str(e).splitlines()[0])


def guarded(body, argv=("tool",)):
    from anomaly_toolbox.errors import USER_ERRORS

    logging.set_verbosity(logging.WARNING)  # TF's INFO lines drown the tool's own output
    _SIGNALLED.clear()
    try:
        if len(argv) > 1:
            from anomaly_toolbox.errors import UsageError

            raise UsageError("arguments", " ".join(argv[1:]), "--flag=value pairs only")
        return body()
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM (_interrupted); cleanups have run
        _exit_interrupted(e)
    except Exception as e:
        if _SIGNALLED:  # the interrupt came out as another error (ImportError, say)
            _exit_interrupted(KeyboardInterrupt(_SIGNALLED[-1]))
        if isinstance(e, USER_ERRORS):
            _error(str(e))
            sys.exit(2)
        raise


def _exit_interrupted(e):
    number = e.args[0] if e.args and isinstance(e.args[0], int) else signal.SIGINT
    _error(f"interrupted by {signal.Signals(number).name}; run the same command again to "
           "finish (training resumes after its last finished epoch)")
    sys.exit(128 + number)


def _error(message):
    """On a terminal, the line starts at column 0: an epoch's progress bar (stdout, redrawn with
    carriage returns) is cleared instead of running into the error."""
    clear = "\r\033[K" if sys.stdout.isatty() and sys.stderr.isatty() else ""
    sys.stdout.flush()
    print(f"{clear}error: {message}", file=sys.stderr)


def _interrupted(number, frame):
    """SIGTERM (kill, Slurm's preemption) ends a command as Ctrl-C does: its cleanups run (no
    half-written output is left) and it says so in one line, instead of dying mid-write. Ctrl-C
    too, so that both are recorded: a library can swallow the KeyboardInterrupt on its way up.
    One within a second of the last one raised is recorded only: a signal to a benchmark's
    process group reaches its cell twice (the group's copy and the runner's), and the second,
    raised inside the first one's handling, ended in a KeyboardInterrupt traceback."""
    _SIGNALLED.append(number)
    now = monotonic()
    if _RAISED_AT and now - _RAISED_AT[-1] < 1:
        return
    _RAISED_AT.append(now)
    raise KeyboardInterrupt(number)
