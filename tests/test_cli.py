"""The console command, quiet start-up, flags checked before TensorFlow loads, --help, and the
input readers' streaming of large inputs."""

import os
import subprocess
import sys

import numpy as np
import pytest

from anomaly_toolbox.data import inputs
from anomaly_toolbox.errors import UsageError


def run(*args, **env):
    """A command as a user runs it: no TF_CPP_MIN_LOG_LEVEL of ours in the environment."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("TF_CPP_MIN_LOG_LEVEL", "ANOMALY_TOOLBOX_TF_LOGS")}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          env={**base, **env})


def without_tensorflow(folder):
    """An environment whose `tensorflow` and `keras` end the process (exit 99) when imported:
    "checked before TensorFlow loads" as a fact, not as a time (a loaded machine needed 3 s to
    start Python where the time limit allowed 1.5)."""
    for name in ("tensorflow", "keras"):
        os.makedirs(folder / name, exist_ok=True)
        (folder / name / "__init__.py").write_text(
            "import os\nos._exit(99)\n")
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def test_the_poisoned_environment_stops_a_command_that_loads_tensorflow(tmp_path):
    """--epochs=0 is refused by config.resolve, after TensorFlow loaded: here, it never gets there."""
    proc = run("anomaly_toolbox.train", "--epochs=0", **without_tensorflow(tmp_path / "poison"))
    assert proc.returncode == 99


@pytest.mark.parametrize("args, message", [
    (["anomaly_toolbox.train", "--model=gan"], "error: invalid model: 'gan'"),
    (["anomaly_toolbox", "train", "--epochs=abc"], "error: invalid epochs: 'abc' (expected an integer"),
    (["anomaly_toolbox", "score", "--nope=1"], "error: invalid flag: '--nope=1'"),
    (["anomaly_toolbox", "trian"], "error: invalid command: 'trian' (expected one of train, score"),
])
def test_a_bad_flag_gives_exactly_one_stderr_line(args, message):
    proc = run(*args)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(message)


def test_no_command_prints_the_usage_and_exits_2():
    """It said "invalid command: ''" with no usage."""
    proc = run("anomaly_toolbox")
    assert proc.returncode == 2 and not proc.stdout
    assert "usage: anomaly-toolbox <command> [--flag=value ...]" in proc.stderr
    for command in ("train", "score", "export", "ensemble"):
        assert f"\n  {command} " in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "error: no command given (expected one of train, score, export, ensemble)")


def test_tensorflow_logs_are_kept_on_request():
    """--epochs=0 is refused by config.resolve, after TensorFlow loaded (quietly by default)."""
    quiet, logs = (run("anomaly_toolbox.train", "--epochs=0", **env)
                   for env in ({}, {"ANOMALY_TOOLBOX_TF_LOGS": "1"}))
    assert quiet.returncode == logs.returncode == 2
    assert quiet.stderr.splitlines() == ["error: invalid epochs: 0 (expected an integer in 1..10000)"]
    assert len(logs.stderr.splitlines()) > 1  # TensorFlow's start-up notices
    assert logs.stderr.splitlines()[-1] == quiet.stderr.strip()


@pytest.mark.parametrize("args, message", [
    (["--model=gan"], "invalid model: 'gan'"),
    (["--model=egbad", "--profile=fast"], "invalid profile: 'fast' (expected one of cpu"),
    (["--config=missing.json"], "invalid config: 'missing.json' (expected an existing JSON"),
    (["--threshold=fpr:2"], "invalid threshold: 'fpr:2'"),
    (["--anomalous_class=10"], "invalid anomalous_class: 10 (expected a class of mnist: 0..9)"),
    (["--data_dir=missing"], "invalid data_dir: 'missing'"),
    (["--dataset=folder:missing"], "invalid dataset: 'folder:missing'"),
    (["--protocol=mine"], "invalid protocol: 'mine'"),
    # once ignored without a word: a folder dataset has its own split and anomalies
    (["--dataset=folder:.", "--anomalous_class=7"], "invalid anomalous_class: 7 (expected no "
     "--anomalous_class with --dataset=folder:PATH"),
    (["--dataset=folder:.", "--protocol=bogus"], "invalid protocol: 'bogus' (expected no --protocol"),
    # once the flag's default: an unset shell variable, say
    (["--config="], "invalid config: '' (expected a value; leave the flag out"),
    (["--data_dir="], "invalid data_dir: ''"),
    (["--precision="], "invalid precision: ''"),
    (["--verbose=7"], "invalid verbose: '7'"),
    (["--dataset=folder:~/mine"], "invalid dataset: 'folder:~/mine' (expected a path without ~"),
])
def test_a_bad_argument_is_refused_before_tensorflow_loads(args, message, tmp_path):
    """The command checks its flags (cli.main: check(), then TensorFlow, then body())."""
    (tmp_path / "train").mkdir()  # for folder:.
    proc = subprocess.run([sys.executable, "-m", "anomaly_toolbox.train", *args,
                           f"--output_dir={tmp_path / 'run'}"], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, **without_tensorflow(tmp_path / "poison")})
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {message}"), proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and not (tmp_path / "run").exists()


@pytest.mark.parametrize("args", [["train", "--model=autoencoder", "--anomalous_class=3",
                                   "--output_dir=~/x"],
                                  ["score", "--saved_model=.", "--input=.", "--output=~/x"]])
def test_a_path_whose_tilde_the_shell_left_is_refused(args, tmp_path):
    """The shell expands ~ only at the start of a word: `--output_dir=~/runs/x` trained into a
    folder named ~ in the working folder, and score wrote its CSV there."""
    flag = args[-1][2:].split("=")[0]
    proc = subprocess.run([sys.executable, "-m", "anomaly_toolbox", *args], capture_output=True,
                          text=True, cwd=tmp_path,
                          env={**os.environ, **without_tensorflow(tmp_path / "poison")})
    assert proc.stderr == f"error: invalid {flag}: '~/x' (expected a path without ~: the shell " \
        f"expands it only at the start of a word; write $HOME instead)\n", proc.stderr
    assert proc.returncode == 2 and not (tmp_path / "~").exists()


@pytest.mark.parametrize("args", [["anomaly_toolbox", "ensemble", "--members="],
                                  ["benchmarks.benchmark", "--models="],
                                  ["benchmarks.speed", "--models="]])
def test_an_explicitly_empty_list_flag_is_refused(args, tmp_path):
    """A list flag given empty is [], not '': benchmark --models= ran no cell and exit 0 (after
    writing its table), speed --models= timed every model."""
    proc = run(*args, f"--benchmarks_md={tmp_path / 'b.md'}" if "benchmarks" in args[0] else
               f"--output_dir={tmp_path / 'e'}", **without_tensorflow(tmp_path / "poison"))
    flag = args[-1][2:-1]
    assert proc.stderr.startswith(f"error: invalid {flag}: ''"), proc.stderr
    assert proc.returncode == 2 and sorted(os.listdir(tmp_path)) == ["poison"]


def test_score_refuses_a_missing_input_before_tensorflow_loads(tmp_path):
    proc = run("anomaly_toolbox", "score", f"--saved_model={tmp_path}",
               f"--input={tmp_path / 'x.npy'}", **without_tensorflow(tmp_path / "poison"))
    assert proc.stderr.startswith(f"error: invalid input: '{tmp_path / 'x.npy'}'"), proc.stderr
    assert proc.returncode == 2


def test_the_models_checked_without_tensorflow_are_the_registered_ones():
    """--model is checked against models.FILES (no import); each file registers its own name."""
    from anomaly_toolbox import models
    from anomaly_toolbox.models import registry

    models.get("ganomaly")  # imports every model file
    assert registry.names() == sorted(models.FILES) == models.names()


def test_top_level_help_lists_the_commands_and_exits_0():
    script = os.path.join(os.path.dirname(sys.executable), "anomaly-toolbox")
    assert os.path.exists(script), "pip install -e . installs the console command"
    proc = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    listed = [line.split()[0] for line in proc.stdout.split("commands:")[1].splitlines()
              if line.startswith("  ")]
    assert listed == ["train", "score", "export", "ensemble"], proc.stdout


def test_top_level_help_into_a_closed_pipe_exits_0_quietly():
    """`anomaly-toolbox --help | head -1` was a BrokenPipeError traceback, exit 1 (a command's
    --help was not)."""
    read, write = os.pipe()
    os.close(read)  # the reader has gone, as head does after its lines
    try:
        proc = subprocess.run([sys.executable, "-m", "anomaly_toolbox", "--help"], stdout=write,
                              stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-500:]


def test_train_help_lists_models_datasets_and_what_no_config_means():
    proc = run("anomaly_toolbox", "train", "--help")
    assert proc.returncode == 0 and not proc.stderr.strip()
    for text in ("anogan, autoencoder, egbad, fanogan, ganomaly", "folder:PATH", "15 epochs", "hours",
                 "--threshold", "fpr:0.01"):
        assert text in proc.stdout, text


def test_npy_input_is_memory_mapped(tmp_path, monkeypatch, images):
    np.save(tmp_path / "x.npy", images[0][:10])
    modes = []
    real = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: modes.append(k.get("mmap_mode")) or real(*a, **k))
    ids, batches = inputs.read_batches(str(tmp_path / "x.npy"), batch_size=4)
    assert modes == ["r"] and ids == list(range(10))
    sizes = [b.shape for b in batches]
    assert sizes == [(4, 28, 28, 1), (4, 28, 28, 1), (2, 28, 28, 1)]


def test_a_folder_is_read_batch_by_batch(tmp_path, monkeypatch, images):
    from PIL import Image

    for i in range(10):
        Image.fromarray(images[0][i]).save(tmp_path / f"{i:02d}.png")
    opened = []
    real = Image.open
    monkeypatch.setattr(Image, "open", lambda path, *a: opened.append(path) or real(path, *a))
    ids, batches = inputs.read_batches(str(tmp_path), batch_size=4)
    assert ids == [f"{i:02d}.png" for i in range(10)] and opened == []
    first = next(batches)
    assert len(opened) == 4 and first.shape == (4, 28, 28, 1)  # not all 10 at once
    rest = list(batches)
    assert len(opened) == 10 and [len(b) for b in rest] == [4, 2]
    np.testing.assert_array_equal(np.concatenate([first, *rest])[..., 0], images[0][:10])


def test_one_image_file_is_an_input(tmp_path, images):
    from PIL import Image

    Image.fromarray(images[0][3]).save(tmp_path / "digit.png")
    ids, x = inputs.read_input(str(tmp_path / "digit.png"))
    assert ids == ["digit.png"] and x.shape == (1, 28, 28, 1)
    np.testing.assert_array_equal(x[0, ..., 0], images[0][3])


def test_folder_images_of_another_size_in_a_later_batch_are_refused(tmp_path, images):
    from PIL import Image

    for i in range(3):
        Image.fromarray(images[0][i]).save(tmp_path / f"{i}.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "9.png")
    with pytest.raises(UsageError, match="same size"):
        list(inputs.read_batches(str(tmp_path), batch_size=2)[1])


@pytest.mark.parametrize("shape, channels, batch", [
    ((28, 28), 1, (1, 28, 28, 1)), ((28, 28, 1), 1, (1, 28, 28, 1)),
    ((5, 28, 28), 1, (5, 28, 28, 1)), ((32, 32, 3), 3, (1, 32, 32, 3)),
    ((2, 32, 32, 3), 3, (2, 32, 32, 3)),
])
def test_array_shapes_follow_the_saved_models_rule(shape, channels, batch):
    assert inputs.as_image_batch(np.zeros(shape, np.int64), channels).shape == batch


def test_an_error_on_a_terminal_clears_the_progress_bar_it_would_run_into(capsys, monkeypatch):
    """`- g_loss: 19.7error: ...`: the bar's line has no newline until its epoch ends."""
    from anomaly_toolbox import cli
    from anomaly_toolbox.errors import UsageError

    def body():
        print("1/9 ━━━━ - g_loss: 19.7", end="")
        raise UsageError("limit", 0, "a positive number")

    for terminal in (False, True):
        monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)
        monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
        with pytest.raises(SystemExit):
            cli.guarded(body)
        err = capsys.readouterr().err
        assert err == ("\r\033[K" if terminal else "") + (
            "error: invalid limit: 0 (expected a positive number)\n"), err


def test_an_interrupt_repeated_within_a_second_is_recorded_not_raised_again(monkeypatch):
    """The repeat would land inside the first one's handling; one a second later raises again
    (a user's second Ctrl-C forces)."""
    import signal

    from anomaly_toolbox import cli

    monkeypatch.setattr(cli, "_SIGNALLED", [])
    monkeypatch.setattr(cli, "_RAISED_AT", [])
    clock = iter([100.0, 100.5, 100.6, 101.7])
    monkeypatch.setattr(cli, "monotonic", lambda: next(clock))
    with pytest.raises(KeyboardInterrupt):
        cli._interrupted(signal.SIGTERM, None)
    cli._interrupted(signal.SIGTERM, None)  # 0.5 s later
    cli._interrupted(signal.SIGINT, None)  # 0.6 s later
    with pytest.raises(KeyboardInterrupt):
        cli._interrupted(signal.SIGINT, None)  # 1.7 s after the first
    assert cli._SIGNALLED == [signal.SIGTERM] * 2 + [signal.SIGINT] * 2
