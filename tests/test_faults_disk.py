"""A full disk at a write of a training run (issue 40): one `error:` line naming the path, exit
2, the previous state intact; the same command then resumes and ends as an uninterrupted run.
Disk full is a file-size limit in a child (RLIMIT_FSIZE: CPython ignores SIGXFSZ, so writes
fail with EFBIG), set from the start (preexec_fn) or armed when a named function is called."""

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from conftest import DATA_DIR, TINY_RUN

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
# runs the train command with RLIMIT_FSIZE lowered to LIMIT bytes when TARGET ("module:attr")
# is called for the CALLS-th time; cli comes first, so TensorFlow is imported quietly
ARMED = """
import importlib, resource, runpy, sys
import anomaly_toolbox.cli
target, calls, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
module, attr = target.split(":")
owner = importlib.import_module(module)
*path, name = attr.split(".")
for part in path:
    owner = getattr(owner, part)
original, seen = getattr(owner, name), []
def armed(*args, **kwargs):
    seen.append(1)
    if len(seen) == calls:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return original(*args, **kwargs)
setattr(owner, name, armed)
sys.argv = ["anomaly_toolbox.train", *sys.argv[4:]]
runpy.run_module("anomaly_toolbox.train", run_name="__main__", alter_sys=True)
"""
# scores the same images with each SavedModel given, after dropping to uid/gid 65534 if asked
# (after importing TensorFlow: the interpreter may live where that uid cannot read, e.g. /root)
SCORE = """
import json, os, sys
import numpy as np
import tensorflow as tf
if sys.argv[1] == "drop":
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
images, paths = np.load(sys.argv[2]), sys.argv[3:]
loaded = [tf.saved_model.load(p) for p in paths]
print(json.dumps({p: m.score(images).numpy().tolist() for p, m in zip(paths, loaded)}))
"""


# each write once with room (the previous state), then again under a 2 kB file-size limit;
# prints {write: the DiskFullError message or None}
WRITES = """
import json, os, resource, sys
import numpy as np
import anomaly_toolbox.cli
import tensorflow as tf
from anomaly_toolbox.errors import DiskFullError
from anomaly_toolbox.run import figures
from anomaly_toolbox.run.rundir import RunDir

run, fresh = RunDir(sys.argv[1]), RunDir(sys.argv[2])
scores, labels = np.linspace(0, 1, 1000), np.arange(1000) % 2
writer = run.summary_writer()
def events(pad):  # a scalar, then a 12 kB image that crosses the limit
    image = np.random.RandomState(0).randint(0, 256, (64, 64, 3), np.uint8)
    writer.write(len(pad), **({"images": {"x": tf.image.encode_png(image).numpy()}} if pad else
                              {"scalars": {"x": 1.0}}))
writes = {
    "history.json": lambda pad: run.append_history({"epoch": 1, "pad": pad}),
    "scores.npz": lambda pad: run.write_scores(scores[:len(pad)], labels[:len(pad)], scores,
                                               labels),
    "run.json": lambda pad: (fresh if pad else run).claim({"pad": pad}),
    "test_curves.png": lambda pad: figures.curves(scores, labels, run.figure("curves"), pad),
    "events": events,
}
messages = {}
for name, write in writes.items():
    write("")
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))
    try:
        write("x" * 3000)
        messages[name] = None
    except DiskFullError as e:
        messages[name] = str(e)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
print(json.dumps(messages))
"""


@pytest.fixture(scope="module")
def base():
    """A folder every user can enter (pytest's tmp_path is 0700), removed at the end."""
    path = tempfile.mkdtemp(prefix="faults-disk-")
    os.chmod(path, 0o755)
    with open(os.path.join(path, "c.json"), "w") as f:
        json.dump(TINY_RUN, f)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _args(base, out):
    return ["--model=ganomaly", "--dataset=mnist", "--anomalous_class=7",
            f"--config={base}/c.json", "--limit=300", f"--data_dir={DATA_DIR}",
            f"--output_dir={out}", "--verbose=2"]


def _umask_022():
    os.umask(0o022)


@pytest.fixture(scope="module")
def reference(base):
    """The uninterrupted run under umask 022, started at once, beside the faulted runs."""
    out = os.path.join(base, "reference")
    log = open(os.path.join(base, "reference.err"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "anomaly_toolbox.train", *_args(base, out)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=log,
                            preexec_fn=_umask_022, start_new_session=True)

    def finished():
        assert proc.wait(timeout=600) == 0, open(log.name).read()[-2000:]
        return out
    yield finished
    if proc.poll() is None:
        os.killpg(proc.pid, 9)
        proc.wait()
    log.close()


def _fail(base, out, file_size=None, target=None, calls=1):
    """Runs the command with a full disk; returns (the one error line, stdout)."""
    if target:
        command = [sys.executable, "-c", ARMED, target, str(calls), "16"]
    else:
        command = [sys.executable, "-m", "anomaly_toolbox.train"]
    limit = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
             if file_size else None)
    done = subprocess.run(command + _args(base, out), env=ENV, capture_output=True, text=True,
                          preexec_fn=limit)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    leftovers = [n for n in os.listdir(out) if n.startswith(".") and n != ".lock"]
    assert not leftovers, leftovers  # no half-written temporary beside a file or the SavedModel
    return errors[0], done.stdout


def _disk_full(path):
    return f"error: disk full writing {path} (File too large); free space and run the same command"


def _score(base, saved_models, drop=False):
    """{SavedModel: scores of six random 28x28 images} from a new process (uid 65534 if `drop`)."""
    src = os.path.join(base, "digits.npy")
    np.save(src, np.random.RandomState(0).randint(0, 256, (6, 28, 28)).astype(np.uint8))
    os.chmod(src, 0o644)
    done = subprocess.run([sys.executable, "-c", SCORE, "drop" if drop else "keep", src,
                           *saved_models], env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_disk_full_at_each_write_then_the_same_command_ends_as_an_uninterrupted_run(
        base, reference):
    out = os.path.join(base, "faulted")
    last, best = os.path.join(out, "checkpoints", "last"), os.path.join(out, "checkpoints", "best")

    # epoch 1's checkpoint (228 kB) is the first file above 100 kB: nothing committed yet
    line, _ = _fail(base, out, file_size=100_000)
    assert line.startswith(_disk_full(last)), line
    assert not os.path.exists(os.path.join(last, "checkpoint")) and not os.path.exists(best)

    # epoch 2's checkpoint: epoch 1's stays the resume point, and the next command resumes from it
    line, _ = _fail(base, out, target="tensorflow:train.CheckpointManager.save", calls=2)
    assert line.startswith(_disk_full(last)), line

    # the SavedModel (994 kB saved_model.pb) in the finish: no folder, no temporary left
    line, stdout = _fail(base, out, file_size=500_000)
    assert f"Resuming {out} after epoch 1" in stdout
    assert line.startswith(_disk_full(f"{out}/saved_model")), line
    assert not os.path.exists(os.path.join(out, "saved_model"))

    # results.json, the last write, which marks the run finished
    line, _ = _fail(base, out, target="anomaly_toolbox.run.rundir:RunDir.write_results")
    assert line.startswith(_disk_full(f"{out}/results.json")), line
    assert not os.path.exists(os.path.join(out, "results.json"))

    done = subprocess.run([sys.executable, "-m", "anomaly_toolbox.train", *_args(base, out)],
                          env=ENV, capture_output=True, text=True)
    assert done.returncode == 0 and "Resuming" in done.stdout, done.stderr[-3000:]
    ref = reference()
    a, b = (json.load(open(os.path.join(d, "results.json"))) for d in (out, ref))
    assert a["selected_epoch"] == b["selected_epoch"]
    assert a["validation"] == b["validation"] and a["test"] == b["test"]
    a, b = (np.load(os.path.join(d, "scores.npz")) for d in (out, ref))
    assert all(np.array_equal(a[k], b[k]) for k in b.files) and a.files == b.files
    scores = _score(base, [os.path.join(d, "saved_model") for d in (out, ref)])
    assert list(scores.values())[0] == list(scores.values())[1]


def test_outputs_have_the_umasks_permissions_and_another_user_loads_the_model(base, reference):
    ref = reference()
    modes = {os.path.relpath(os.path.join(d, n), ref): os.stat(os.path.join(d, n)).st_mode & 0o777
             for d, dirs, files in os.walk(ref) for n in dirs + files}
    wrong = {p: oct(m) for p, m in modes.items()
             if m != (0o755 if os.path.isdir(os.path.join(ref, p)) else 0o644)}
    assert not wrong and "saved_model" in modes and "results.json" in modes, wrong
    if os.geteuid() != 0:
        pytest.skip("dropping to another uid needs root (CI runs the suite as root)")
    scores = _score(base, [os.path.join(ref, "saved_model")], drop=True)
    assert len(scores[os.path.join(ref, "saved_model")]) == 6


def test_each_atomic_write_and_the_event_file_name_themselves_and_keep_the_previous_file(tmp_path):
    run, fresh = tmp_path / "run", tmp_path / "fresh"
    done = subprocess.run([sys.executable, "-c", WRITES, str(run), str(fresh)], env=ENV,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    messages = json.loads(done.stdout.splitlines()[-1])
    for name in ("history.json", "scores.npz", "test_curves.png"):
        assert messages[name].startswith(f"disk full writing {run / name} (File too large)"), name
    assert messages["run.json"].startswith(f"disk full writing {fresh / 'run.json'}")
    events = list((run / "logs").iterdir())
    assert messages["events"].startswith(f"disk full writing {events[0]} ("), messages["events"]
    # the previous files, whole; nothing half-written beside them
    assert json.loads((run / "history.json").read_text()) == [{"epoch": 1, "pad": ""}]
    assert len(np.load(run / "scores.npz")["val_scores"]) == 0
    assert json.loads((run / "run.json").read_text()) == {"pad": ""}
    assert (run / "test_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not (fresh / "run.json").exists()
    hidden = [p.name for d in (run, fresh) for p in d.iterdir() if p.name.startswith(".")]
    assert not [n for n in hidden if n != ".lock"], hidden
