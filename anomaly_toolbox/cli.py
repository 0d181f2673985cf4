"""The shape every `python -m anomaly_toolbox...` entry point shares: flags defined on demand
(importing a tool defines none), TensorFlow's INFO logs hidden, and every user error turned
into one `error: ...` line on stderr with exit code 2."""

import sys

from absl import app, logging


def main(define_flags, body):
    """Defines the tool's flags, then runs `body()` under absl with the error contract."""
    define_flags()
    app.run(lambda argv: guarded(body, argv))


def guarded(body, argv=("tool",)):
    from anomaly_toolbox.errors import USER_ERRORS

    logging.set_verbosity(logging.WARNING)  # TF's INFO lines drown the tool's own output
    try:
        if len(argv) > 1:
            from anomaly_toolbox.errors import UsageError

            raise UsageError("arguments", " ".join(argv[1:]), "--flag=value pairs only")
        return body()
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
