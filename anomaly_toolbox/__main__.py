"""anomaly-toolbox: GAN-based anomaly detection on images.

usage: anomaly-toolbox <command> [--flag=value ...]      (or python -m anomaly_toolbox ...)

commands:
{commands}

`anomaly-toolbox <command> --help` lists a command's flags. ANOMALY_TOOLBOX_TF_LOGS=1 shows
TensorFlow's own start-up logs, hidden by default.
"""

import importlib
import sys

COMMANDS = {
    "train": ("anomaly_toolbox.train", "train, evaluate and export one detector"),
    "score": ("anomaly_toolbox.score", "score images with an exported SavedModel -> CSV"),
    "export": ("anomaly_toolbox.export", "a finished run's SavedModel again, in another precision"),
    "ensemble": ("anomaly_toolbox.ensemble", "combine finished runs into one detector"),
}


def usage():
    return __doc__.format(commands="\n".join(f"  {name:<10} {what}"
                                             for name, (_, what) in COMMANDS.items())).strip()


def main(argv=None):
    """Dispatches to the command's module; the module's flags and error contract apply."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2:  # was "invalid command: ''": the usage says what to type
        print(f"{usage()}\n\nerror: no command given (expected one of {', '.join(COMMANDS)})",
              file=sys.stderr)
        sys.exit(2)
    command = argv[1]
    if command in ("-h", "--help", "help"):
        try:
            print(usage())
        except BrokenPipeError:  # `--help | head`, as for a command's --help (cli.parse_flags)
            pass
        sys.exit(0)
    if command not in COMMANDS:
        print(f"error: invalid command: {command!r} (expected one of {', '.join(COMMANDS)}; "
              f"anomaly-toolbox --help)", file=sys.stderr)
        sys.exit(2)
    from anomaly_toolbox import cli

    module = importlib.import_module(COMMANDS[command][0])
    sys.argv = [f"anomaly-toolbox {command}", *argv[2:]]
    cli.main(module.define_flags, module.body, module.check)


if __name__ == "__main__":
    main()
