"""Nothing the user had is ever lost: faults injected into real runs of segment, relabel, remove, split,
render-masks and the demo's writer, over existing outputs.

* in-process, each fsync and each rename of a run fails once in turn (os.fsync / os.replace monkeypatched), and
  each write fails in turn (a file-size limit just below each output file's size, as ``ulimit -f`` does);
* in a subprocess, SIGINT, SIGTERM and SIGKILL arrive at named points of the commit (before the first rename,
  between renames, after the last; ``GSSEG_TEST_SIGNAL_AT``).

After each fault: the previous outputs are byte-identical, or the new ones are complete and consistent, or (a
kill between renames) the mixed pair is refused; no temporary is left after the next run; modes follow the umask.
"""

import errno
import json
import os
import resource
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from blender_gsseg.cli import main
from blender_gsseg.core.errors import GssegError
from blender_gsseg.core.files.commit import LOCK_NAME, MANIFEST_NAME
from blender_gsseg.core.files.splats import read_gaussians
from synthetic.scene import make_scene, write_inputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INJECTED = {"count": 0}  # faults injected over the module, reported at the end


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """scene.ply, cameras.json and two mask folders that give different labels (masks_b swaps 1 and 2)."""
    root = tmp_path_factory.mktemp("faults")
    scene = make_scene(n_spheres=2, points_per_unit_area=200, n_cameras=6, width=64, height=48, seed=5)
    swapped = np.array([0, 2, 1, 3])
    write_inputs(root, scene, {"masks": scene.mask, "masks_b": lambda camera: swapped[scene.mask(camera)]})
    return root


def run(*args):
    return main([str(a) for a in args])


def segment(inputs, out, masks="masks", *extra):
    return run("segment", inputs / "scene.ply", "--cameras", inputs / "cameras.json", "--masks", inputs / masks,
               "-o", out, "--backend", "cpu", *extra)


def snapshot(folder):
    """{relative path: (bytes, mode)} of every file under ``folder``, the lock file and temporaries left out."""
    found = {}
    for root, _dirs, names in os.walk(folder):
        if ".gsseg-" in root:
            continue
        for name in names:
            if name == LOCK_NAME or ".gsseg-" in name:  # temporaries are checked by temporaries()
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, folder)] = (handle.read(), stat.S_IMODE(os.stat(path).st_mode))
    return found


def temporaries(folder):
    return sorted(name for root, dirs, names in os.walk(folder) for name in names + dirs if ".gsseg-" in name)


def consistent(out):
    """The PLY and its sidecar come from one run: relabel accepts them."""
    return main(["relabel", str(out), "--gamma", "0.1", "-o", str(out.parent / "check.ply")]) == 0


class Fail:
    """Make ``os.<name>`` raise ENOSPC on its ``at``-th call (1-based); count the calls."""

    def __init__(self, name, at=None):
        self.name, self.at, self.calls = name, at, 0
        self.real = getattr(os, name)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            INJECTED["count"] += 1
            raise OSError(errno.ENOSPC, "No space left on device", args[0] if args else None)
        return self.real(*args, **kwargs)


# ----- the commands, each over outputs that exist already


def command_segment(inputs, out_dir):
    return lambda: segment(inputs, out_dir / "out.ply", "masks_b", "--report", out_dir / "report.json")


def command_relabel(inputs, out_dir):
    return lambda: run("relabel", out_dir / "out.ply", "--gamma", "0.4")


def command_remove(inputs, out_dir):
    return lambda: run("remove", out_dir / "out.ply", "--labels", "1", "-o", out_dir / "removed.ply",
                       "--gamma", "-0.2")


def command_split(inputs, out_dir):
    return lambda: run("split", out_dir / "out.ply", "-o", out_dir / "parts", "--overwrite")


def command_render_masks(inputs, out_dir):
    return lambda: run("render-masks", out_dir / "out.ply", "--cameras", inputs / "cameras.json", "-o",
                       out_dir / "rendered", "--colour", "--overwrite", "--backend", "cpu", "--mode", "argmax")


def command_demo(inputs, out_dir):
    from blender_gsseg.core.files.commit import Commit
    from blender_gsseg.core.pipeline import segment_scene, write_labeled

    def writer():  # the demo's writer: a folder of its own, replaced whole (the lift itself is segment's)
        result = segment_scene(inputs / "scene.ply", inputs / "cameras.json", inputs / "masks_b", backend="cpu")
        try:
            with Commit() as commit:
                folder = commit.folder(out_dir / "demo", kind="demo", overwrite=True)
                write_labeled(os.path.join(folder.path, "scene_labeled.ply"), result.gaussians,
                              result.accumulation, commit=folder)
        except GssegError as error:  # as gsseg demo reports it
            sys.stderr.write(f"gsseg: error: {error}\n")
            return error.exit_code
        return 0
    return writer


COMMANDS = {"segment": command_segment, "relabel": command_relabel, "remove": command_remove,
            "split": command_split, "render-masks": command_render_masks, "demo": command_demo}


def previous_outputs(inputs, out_dir):
    """The outputs a user had: a segmentation (masks), its removal, split, rendered masks and a demo folder."""
    out_dir.mkdir()
    assert segment(inputs, out_dir / "out.ply", "masks", "--report", out_dir / "report.json") == 0
    assert run("remove", out_dir / "out.ply", "--labels", "2", "-o", out_dir / "removed.ply") == 0
    assert run("split", out_dir / "out.ply", "-o", out_dir / "parts") == 0
    assert run("render-masks", out_dir / "out.ply", "--cameras", inputs / "cameras.json", "-o",
               out_dir / "rendered", "--backend", "cpu") == 0
    assert COMMANDS["demo"](inputs, out_dir)() == 0
    os.chmod(out_dir / "out.ply", 0o640)  # a replaced file keeps its mode


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_fsync_and_rename_failing_in_turn(command, inputs, tmp_path, monkeypatch, capsys):
    out_dir = tmp_path / "out"
    previous_outputs(inputs, out_dir)
    before = snapshot(out_dir)
    counts, landed = {}, None
    for name in ("fsync", "replace"):  # a clean run over copies of the outputs: how many calls to fail
        probe = Fail(name)
        copy = tmp_path / f"probe_{name}"
        _copy_tree(out_dir, copy)
        monkeypatch.setattr(os, name, probe)
        assert COMMANDS[command](inputs, copy)() == 0
        monkeypatch.undo()
        counts[name] = probe.calls
        landed = sorted(snapshot(copy))
    assert counts["fsync"] >= 1 and counts["replace"] >= 1, counts
    failed = 0
    for name, calls in counts.items():
        for at in range(1, calls + 1):
            work = tmp_path / f"run_{name}_{at}"
            _copy_tree(out_dir, work)
            monkeypatch.setattr(os, name, Fail(name, at))
            code = COMMANDS[command](inputs, work)()
            monkeypatch.undo()
            assert temporaries(work) == [], (command, name, at)
            if code == 2:  # the previous outputs, byte for byte, modes too
                failed += 1
                assert snapshot(work) == before, (command, name, at)
            else:  # a failure after the last rename (the folder's fsync): the new outputs, complete
                assert code == 0 and sorted(snapshot(work)) == landed and consistent(work / "out.ply"), (name, at)
    assert failed >= counts["replace"]
    message = capsys.readouterr().err
    assert "disk full" in message and str(tmp_path) in message and ".part" not in message


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_write_failing_in_turn(command, inputs, tmp_path, capsys):
    """A file-size limit below each output file's new size in turn (the k-th file's last write fails)."""
    out_dir = tmp_path / "out"
    previous_outputs(inputs, out_dir)
    before = snapshot(out_dir)
    probe = tmp_path / "probe"
    _copy_tree(out_dir, probe)
    assert COMMANDS[command](inputs, probe)() == 0
    new_sizes = sorted({len(data) for path, (data, _) in snapshot(probe).items()
                        if snapshot(out_dir).get(path, (None,))[0] != data and len(data) > 0})
    limits = [0] + [size - 1 for size in new_sizes]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    try:
        for limit in limits:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
            try:
                code = COMMANDS[command](inputs, out_dir)()
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            INJECTED["count"] += 1
            assert code == 2, limit
            assert snapshot(out_dir) == before, (command, limit)
            assert temporaries(out_dir) == [], (command, limit)
    finally:
        signal.signal(signal.SIGXFSZ, previous_handler)
    message = capsys.readouterr().err
    assert "file too large" in message and "Traceback" not in message


def _copy_tree(source, target):
    import shutil

    shutil.copytree(source, target, copy_function=shutil.copy2)


# ----- signals at the named points of the commit, in a subprocess


POINTS = ("before-first-rename", "between-renames", "after-last-rename")
SIGNALS = {"SIGINT": 130, "SIGTERM": 143, "SIGKILL": -9}


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("signame", sorted(SIGNALS))
def test_signals_at_each_point_of_the_commit(point, signame, inputs, tmp_path):
    out = tmp_path / "out.ply"
    assert segment(inputs, out) == 0
    before = snapshot(tmp_path)
    env = dict(os.environ, GSSEG_TEST_SIGNAL_AT=f"{point}:{signame}", PYTHONPATH=REPO)
    process = subprocess.run([sys.executable, "-m", "blender_gsseg", "segment", str(inputs / "scene.ply"),
                              "--cameras", str(inputs / "cameras.json"), "--masks", str(inputs / "masks_b"),
                              "-o", str(out), "--backend", "cpu"], env=env, capture_output=True, text=True,
                             timeout=120)
    INJECTED["count"] += 1
    after = snapshot(tmp_path)
    held_back = signame != "SIGKILL" and point != "before-first-rename"  # SIGINT/SIGTERM wait for the commit
    if signame == "SIGKILL" or not held_back:
        assert process.returncode == SIGNALS[signame], (process.returncode, process.stderr)
    if not held_back and signame != "SIGKILL" or (signame == "SIGKILL" and point == "before-first-rename"):
        assert after == before  # nothing landed
    elif signame == "SIGKILL" and point == "between-renames":
        # the new sidecar landed beside the old PLY: detected, never used, and the previous pair put back
        assert after != before
        assert main(["relabel", str(out), "--gamma", "0"]) == 2
        assert snapshot(tmp_path) == before and consistent(out)
    else:
        assert process.returncode in (0, SIGNALS[signame]), process.stderr
        assert after != before and consistent(out)  # the new outputs, complete and consistent
        labels = read_gaussians(out).vertex["gsseg_label"]
        assert set(np.unique(labels).tolist()) <= {-1, 0, 1, 2, 3}
    # the next run cleans up what a killed run left, and lands
    assert segment(inputs, out) == 0
    assert temporaries(tmp_path) == [] and consistent(out)



def test_a_signal_held_until_the_commit_landed_says_so(inputs, tmp_path):
    """Issue 29: Ctrl-C on split printed "cancelled", exit 130, yet the folder had landed."""
    assert segment(inputs, tmp_path / "out.ply") == 0
    env = dict(os.environ, GSSEG_TEST_SIGNAL_AT="after-last-rename:SIGINT", PYTHONPATH=REPO)
    process = subprocess.run([sys.executable, "-m", "blender_gsseg", "split", str(tmp_path / "out.ply"), "-o",
                              str(tmp_path / "parts")], env=env, capture_output=True, text=True, timeout=120)
    assert process.returncode == 130
    assert process.stderr.strip() == f"gsseg: cancelled after the output was written ({tmp_path / 'parts'})"
    assert MANIFEST_NAME in os.listdir(tmp_path / "parts") and temporaries(tmp_path) == []


def test_ctrl_c_before_the_command_starts_is_reported_not_a_traceback(monkeypatch, capsys):
    """Issue 29: Ctrl-C in the first ~0.2 s (while numpy loaded, before main() ran) gave Python's traceback,
    rc -2. The CLI module now loads nothing heavy, and main() reports an interrupt from its first line."""
    import argparse

    check = subprocess.run([sys.executable, "-c", "import sys, blender_gsseg.cli; print(sorted(m for m in "
                            "('numpy', 'PIL', 'blender_gsseg.core.files.commit') if m in sys.modules))"],
                           env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=60)
    assert check.stdout.strip() == "[]", check.stdout + check.stderr

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", interrupted)
    assert main(["info", "x.ply"]) == 130
    assert capsys.readouterr().err == "gsseg: cancelled\n"


def test_a_closed_pipe_is_a_quiet_exit(inputs):
    """Issue 29: `gsseg info --json x | true` printed "a file: Broken pipe", exit 2."""
    read, write = os.pipe()
    os.close(read)
    try:
        process = subprocess.run([sys.executable, "-m", "blender_gsseg", "info", "--json", str(inputs / "scene.ply")],
                                 env=dict(os.environ, PYTHONPATH=REPO), stdout=write, stderr=subprocess.PIPE,
                                 text=True, timeout=60)
    finally:
        os.close(write)
    assert process.returncode == 128 + signal.SIGPIPE and process.stderr == ""

# ----- concurrency, modes, the run binding


def test_two_runs_on_one_output_never_interleave(inputs, tmp_path):
    out = tmp_path / "out.ply"
    command = [sys.executable, "-m", "blender_gsseg", "segment", str(inputs / "scene.ply"), "--cameras",
               str(inputs / "cameras.json"), "-o", str(out), "--backend", "cpu"]
    env = dict(os.environ, PYTHONPATH=REPO)
    runs = [subprocess.Popen(command + ["--masks", str(inputs / masks)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) for masks in ("masks", "masks_b", "masks", "masks_b")]
    for process in runs:
        process.communicate(timeout=240)
        assert process.returncode == 0
    assert consistent(out) and temporaries(tmp_path) == []


def test_modes_follow_the_umask_and_a_replaced_file_keeps_its_own(inputs, tmp_path):
    old = os.umask(0o027)
    try:
        assert segment(inputs, tmp_path / "out.ply") == 0
        assert stat.S_IMODE(os.stat(tmp_path / "out.ply").st_mode) == 0o640
        assert stat.S_IMODE(os.stat(tmp_path / "out.gsseg.npz").st_mode) == 0o640
        os.umask(0o022)
        os.chmod(tmp_path / "out.ply", 0o604)
        assert segment(inputs, tmp_path / "out.ply", "masks_b") == 0
        assert stat.S_IMODE(os.stat(tmp_path / "out.ply").st_mode) == 0o604
        assert run("split", tmp_path / "out.ply", "-o", tmp_path / "parts") == 0
        assert {stat.S_IMODE(os.stat(tmp_path / "parts" / n).st_mode) for n in os.listdir(tmp_path / "parts")} \
            == {0o644}
    finally:
        os.umask(old)


def test_a_pair_from_two_runs_is_refused(inputs, tmp_path, capsys):
    assert segment(inputs, tmp_path / "a.ply") == 0
    assert segment(inputs, tmp_path / "b.ply", "masks_b") == 0
    os.replace(tmp_path / "b.gsseg.npz", tmp_path / "a.gsseg.npz")
    for command in (["relabel", tmp_path / "a.ply", "--gamma", "0.2"],
                    ["remove", tmp_path / "a.ply", "--labels", "1", "--gamma", "0", "-o", tmp_path / "r.ply"]):
        assert run(*command) == 2
        assert "re-run segment" in capsys.readouterr().err
    assert not (tmp_path / "r.ply").exists()


# ----- one test per reported defect


def test_a_pair_whose_rows_were_reordered_is_refused(inputs, tmp_path, capsys):
    """Issue 29: `convert l.ply c.compressed.ply && convert c.compressed.ply l.ply` Morton-reorders the rows and
    keeps gsseg_run; relabel then changed 85% of the labels. Reversed or shifted rows did the same."""
    from blender_gsseg.core.files.ply import write_gaussians

    out = tmp_path / "l.ply"
    assert segment(inputs, out) == 0
    sidecar = (tmp_path / "l.gsseg.npz").read_bytes()
    scene = read_gaussians(out)
    count = len(scene)
    for order in (np.arange(count)[::-1], np.roll(np.arange(count), 1)):
        write_gaussians(tmp_path / "r.ply", scene.subset(order))
        (tmp_path / "r.gsseg.npz").write_bytes(sidecar)
        for command in (["relabel", tmp_path / "r.ply", "--gamma", "0"],
                        ["remove", tmp_path / "r.ply", "--labels", "1", "--gamma", "0", "-o", tmp_path / "x.ply"]):
            assert run(*command) == 2
            assert "in the order, its sidecar" in capsys.readouterr().err
    assert run("convert", out, tmp_path / "c.compressed.ply") == 0
    assert run("convert", tmp_path / "c.compressed.ply", out) == 0
    assert run("relabel", out, "--gamma", "0") == 2
    assert "re-run segment" in capsys.readouterr().err
    assert segment(inputs, out) == 0 and run("relabel", out, "--gamma", "0") == 0  # rows as written: accepted



def test_a_failed_rerun_keeps_the_previous_sidecar(inputs, tmp_path, capsys):
    out = tmp_path / "out.ply"
    assert segment(inputs, out) == 0
    before = snapshot(tmp_path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1500, hard))
    try:
        code = segment(inputs, out, "masks_b")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert code == 2 and snapshot(tmp_path) == before
    message = capsys.readouterr().err
    assert f"{tmp_path}/out.gsseg.npz: cannot write (file too large)" in message  # the sidecar lands first
    assert ".part" not in message and "Exception ignored" not in message
    assert main(["relabel", str(out), "--gamma", "0"]) == 0


def test_outputs_may_not_replace_inputs(inputs, tmp_path, capsys):
    scene = tmp_path / "in.ply"
    scene.write_bytes((inputs / "scene.ply").read_bytes())
    original = scene.read_bytes()
    assert run("segment", scene, "--cameras", inputs / "cameras.json", "--masks", inputs / "masks", "-o",
               tmp_path / "out.ply", "--report", scene, "--backend", "cpu") == 2
    assert "may not replace an input" in capsys.readouterr().err and scene.read_bytes() == original
    assert not (tmp_path / "out.ply").exists()
    assert segment(inputs, tmp_path / "out.ply") == 0
    assert run("remove", tmp_path / "out.ply", "--labels", "1", "-o", tmp_path / "out.ply") == 2
    assert run("split", tmp_path / "out.ply", "-o", inputs / "masks") == 2  # the folder holds the masks
    assert run("render-masks", tmp_path / "out.ply", "--cameras", inputs / "cameras.json", "-o", tmp_path,
               "--backend", "cpu") == 2  # the folder holds the scene
    # relabel without -o rewrites its input in place, by design, through the same commit
    assert run("relabel", tmp_path / "out.ply", "--gamma", "0.3") == 0 and consistent(tmp_path / "out.ply")


def test_split_into_a_folder_that_holds_files(inputs, tmp_path, capsys):
    assert segment(inputs, tmp_path / "out.ply") == 0
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep me")
    assert run("split", tmp_path / "out.ply", "-o", folder) == 2
    assert run("split", tmp_path / "out.ply", "-o", folder, "--overwrite") == 2
    assert sorted(os.listdir(folder)) == ["mine.txt"]
    assert "did not write" in capsys.readouterr().err
    (folder / "mine.txt").unlink()
    assert run("split", tmp_path / "out.ply", "-o", folder) == 0  # empty: fine
    first = sorted(os.listdir(folder))
    assert MANIFEST_NAME in first
    assert run("split", tmp_path / "out.ply", "-o", folder) == 2  # written: --overwrite replaces it
    assert segment(inputs, tmp_path / "out.ply", "masks_b") == 0
    assert run("split", tmp_path / "out.ply", "-o", folder, "--overwrite") == 0
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert sorted(manifest["files"] + [MANIFEST_NAME]) == sorted(os.listdir(folder))  # nothing stale mixed in
    (folder / "extra.ply").write_bytes(b"x")
    assert run("split", tmp_path / "out.ply", "-o", folder, "--overwrite") == 2
    assert (folder / "extra.ply").read_bytes() == b"x"


def test_a_cancelled_demo_leaves_no_folder(tmp_path, monkeypatch):
    from blender_gsseg import demo

    def cancel(done, total):
        if done == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(str(tmp_path / "demo"), backend="cpu", progress=cancel)
    assert os.listdir(tmp_path) == []  # no partial folder, no temporaries, not even the lock


def test_a_failed_write_leaves_no_folders_it_made(inputs, tmp_path, monkeypatch):
    assert segment(inputs, tmp_path / "out.ply") == 0
    monkeypatch.setattr(os, "replace", Fail("replace", 1))
    assert run("remove", tmp_path / "out.ply", "--labels", "1", "-o", tmp_path / "new" / "deep" / "r.ply") == 2
    monkeypatch.undo()
    assert not (tmp_path / "new").exists()


KILLED_WRITER = """
import os, signal, sys
from blender_gsseg.core.files.commit import Commit
commit = Commit()
with open(commit.file(sys.argv[1] + "/out.ply"), "wb") as handle:
    handle.write(b"half")
folder = commit.folder(sys.argv[1] + "/parts", kind="split")
with open(folder.file(folder.path + "/a.ply"), "wb") as handle:
    handle.write(b"half")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_temporaries_of_a_killed_run_are_removed_by_the_next(inputs, tmp_path):
    assert segment(inputs, tmp_path / "out.ply") == 0
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], env=dict(os.environ, PYTHONPATH=REPO))
    assert killed.returncode == -9 and len(temporaries(tmp_path)) == 3  # its record, a file, a staging folder
    (tmp_path / "unrelated.part").write_bytes(b"not ours")
    assert segment(inputs, tmp_path / "out.ply", "masks_b") == 0
    assert temporaries(tmp_path) == [] and not (tmp_path / "parts").exists()
    assert (tmp_path / "unrelated.part").exists()


def test_files_that_only_look_like_temporaries_are_never_removed(inputs, tmp_path):
    """Issue 29: a user's `.notes.gsseg-4190000-deadbeef.part.txt` and folder `.thesis.gsseg-…old/` were swept
    as a dead run's temporaries; only what a run record proves ours is removed now."""
    mine = [tmp_path / ".notes.gsseg-4190000-deadbeef.part.txt", tmp_path / ".gsseg-0123456789ab-0.part.ply",
            tmp_path / ".gsseg-0123456789ab.run"]  # the last one no run record of ours: not JSON
    for path in mine:
        path.write_bytes(b"my notes")
    thesis = tmp_path / ".thesis.gsseg-4190000-deadbeef.old"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("keep me")
    assert segment(inputs, tmp_path / "out.ply") == 0
    assert segment(inputs, tmp_path / "out.ply", "masks_b") == 0
    assert all(path.read_bytes() == b"my notes" for path in mine)
    assert (thesis / "chapter1.tex").read_text() == "keep me"


def test_a_live_run_in_another_pid_namespace_keeps_its_temporaries(inputs, tmp_path, monkeypatch):
    """Issue 29: run B (in a container: A's pid means nothing there) deleted A's live staging folder, and A
    landed a folder missing files. A live run's temporaries are now told by its record's lock, not a pid."""
    from blender_gsseg.core.files.commit import Commit

    assert segment(inputs, tmp_path / "out.ply") == 0
    monkeypatch.setattr(os, "getpid", lambda: 4190000)  # a pid that does not exist here
    first = Commit()
    folder = first.folder(tmp_path / "parts", kind="split")
    for number in range(3):
        with open(folder.file(os.path.join(folder.path, f"{number}.txt")), "w") as handle:
            handle.write(str(number))
    monkeypatch.undo()
    assert segment(inputs, tmp_path / "out.ply", "masks_b") == 0  # commits in the same folder, sweeping it
    with open(folder.file(os.path.join(folder.path, "3.txt")), "w") as handle:
        handle.write("3")
    first.commit()
    assert sorted(os.listdir(tmp_path / "parts")) == ["0.txt", "1.txt", "2.txt", "3.txt", MANIFEST_NAME]
    assert temporaries(tmp_path) == []


def test_a_run_whose_temporaries_vanished_never_lands(tmp_path):
    import shutil

    from blender_gsseg.core.files.commit import Commit, WriteError

    commit = Commit()
    folder = commit.folder(tmp_path / "parts", kind="split")
    with open(folder.file(os.path.join(folder.path, "a.txt")), "w") as handle:
        handle.write("a")
    shutil.rmtree(folder.path)  # another program
    with pytest.raises(WriteError, match="removed while this command ran"):
        folder.file(os.path.join(folder.path, "b.txt"))
    with pytest.raises(WriteError, match="removed while this command ran"):
        commit.commit()
    assert not (tmp_path / "parts").exists() and temporaries(tmp_path) == []
    commit = Commit()
    with open(commit.file(tmp_path / "x.ply"), "w") as handle:
        handle.write("x")
    os.unlink(commit.entries[0][1])
    with pytest.raises(WriteError, match="removed while this command ran"):
        commit.commit()
    assert os.listdir(tmp_path) == [LOCK_NAME]


def test_long_names_symlinks_and_files_in_the_way(inputs, tmp_path, capsys):
    """Issue 29: a 250-character output name was refused (its temporary's name was longer); `-o scene.ply/o.ply`
    said "File exists"; `-o LINK` replaced the link with a file and left its target unchanged (now the target
    is written and the link stays, as cp does)."""
    assert segment(inputs, tmp_path / "out.ply") == 0
    long = tmp_path / ("n" * 246 + ".ply")
    assert run("remove", tmp_path / "out.ply", "--labels", "1", "-o", long) == 0
    assert read_gaussians(long).vertex.shape[0] > 0 and temporaries(tmp_path) == []
    assert run("remove", tmp_path / "out.ply", "--labels", "1", "-o", tmp_path / "out.ply" / "o.ply") == 2
    assert capsys.readouterr().err.strip().endswith(f"{tmp_path / 'out.ply'}: is a file, not a folder")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "target.ply").write_bytes(b"old")
    os.symlink(tmp_path / "real" / "target.ply", tmp_path / "link.ply")
    assert run("remove", tmp_path / "out.ply", "--labels", "1", "-o", tmp_path / "link.ply") == 0
    assert os.path.islink(tmp_path / "link.ply")
    assert (tmp_path / "real" / "target.ply").read_bytes() == long.read_bytes()
    assert temporaries(tmp_path) == []


def test_an_output_name_too_long_for_its_sidecar_is_refused_before_the_lift(inputs, tmp_path, capsys,
                                                                           monkeypatch):
    """A 246-character PLY name fits, its sidecar's (NAME.gsseg.npz) does not: refused in one line naming the
    sidecar before anything is read or lifted, where it used to fail after the whole lift."""
    import blender_gsseg.core.pipeline as pipeline

    def no_lift(*args, **kwargs):
        raise AssertionError("the lift ran")

    monkeypatch.setattr(pipeline, "segment_scene", no_lift)
    out = tmp_path / "out"
    out.mkdir()
    long = out / ("n" * 246 + ".ply")
    assert segment(inputs, long) == 2
    sidecar = str(long)[:-len(".ply")] + ".gsseg.npz"
    assert _last_error(capsys) == (f"gsseg: error: {sidecar}: the file name is 256 bytes, longer than the file "
                                   f"system allows (255); choose a shorter output name")
    assert os.listdir(out) == []


def test_report_the_injected_faults():
    """Runs last in this module: the count of faults injected above, none of which lost data."""
    print(f"\ninjected faults: {INJECTED['count']}; previous outputs lost: 0")
    assert INJECTED["count"] > 50


def _last_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def test_tracebacks_became_one_line_errors(inputs, tmp_path, capsys):
    raw = (inputs / "scene.ply").read_bytes()
    (tmp_path / "twice.ply").write_bytes(raw.replace(b"property float y\n", b"property float x\n", 1))
    assert run("info", tmp_path / "twice.ply") == 2
    assert "names the property 'x' twice" in _last_error(capsys)
    assert run("segment", inputs / "scene.ply", "--cameras", inputs / "cameras.json", "--masks", inputs / "masks",
               "-o", tmp_path / "o.ply", "--scale", "0.001") == 2
    assert "--scale 0.001: camera" in _last_error(capsys) and not (tmp_path / "o.ply").exists()
    assert run("segment", inputs / "scene.ply", "--cameras", inputs / "cameras.json", "--masks", inputs / "masks",
               "-o", tmp_path / "o.ply", "--memory-budget", "-5") == 2
    assert "--memory-budget -5" in _last_error(capsys)



def _png_header(width, height):
    """A PNG that declares ``width`` x ``height`` (no pixel data): what Pillow reads to tell an image's size."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_values_that_crashed_are_one_line_errors(inputs, tmp_path, capsys):
    """Issue 29: each of these printed a traceback (OverflowError, ValueError, DecompressionBombError)."""
    from blender_gsseg.core.files.colmap import write_colmap_binary
    from blender_gsseg.core.files.camera_files import load_cameras

    def segment_with(*extra, cameras=inputs / "cameras.json"):
        return run("segment", inputs / "scene.ply", "--cameras", cameras, "--masks", inputs / "masks", "-o",
                   tmp_path / "o.ply", "--backend", "cpu", *extra)

    assert segment_with("--scale", "inf") == 2
    assert "--scale inf: must be a positive finite number" in _last_error(capsys)
    assert segment_with("--memory-budget", "inf") == 2
    assert "--memory-budget inf: must be a positive finite number" in _last_error(capsys)
    assert segment(inputs, tmp_path / "l.ply") == 0
    capsys.readouterr()
    assert run("render-masks", tmp_path / "l.ply", "--cameras", inputs / "cameras.json", "-o", tmp_path / "m",
               "--scale", "inf", "--backend", "cpu") == 2
    assert "--scale inf: must be a positive finite number" in _last_error(capsys)
    # COLMAP cameras.bin of width 2^63
    (tmp_path / "colmap").mkdir()
    write_colmap_binary(tmp_path / "colmap", load_cameras(inputs / "cameras.json"))
    raw = bytearray((tmp_path / "colmap" / "cameras.bin").read_bytes())
    raw[16:24] = (2**63).to_bytes(8, "little")  # the first record: id, model, width, height
    (tmp_path / "colmap" / "cameras.bin").write_bytes(bytes(raw))
    assert segment_with(cameras=tmp_path / "colmap") == 2
    assert f"width {2**63} is past any image" in _last_error(capsys)
    # a transforms.json without w/h whose image is 200 Mpx
    (tmp_path / "nerf").mkdir()
    (tmp_path / "nerf" / "big.png").write_bytes(_png_header(20000, 10000))
    frame = {"file_path": "big", "fl_x": 100.0, "fl_y": 100.0,
             "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]}
    (tmp_path / "nerf" / "transforms.json").write_text(json.dumps({"frames": [frame]}))
    assert segment_with(cameras=tmp_path / "nerf" / "transforms.json") == 2
    message = _last_error(capsys)
    assert "big.png is too large to read" in message and "200000000 pixels" in message
    # numbers in messages are plain numbers, not numpy reprs
    cameras = json.loads((inputs / "cameras.json").read_text())
    cameras[0]["fx"] = 0.0
    (tmp_path / "zero.json").write_text(json.dumps(cameras))
    assert segment_with(cameras=tmp_path / "zero.json") == 2
    message = _last_error(capsys)
    assert "fx must be a finite positive number, not 0.0" in message and "np." not in message


def test_a_scheduler_address_that_is_not_one(inputs, tmp_path, capsys):
    pytest.importorskip("distributed")
    assert run("segment", inputs / "scene.ply", "--cameras", inputs / "cameras.json", "--masks", inputs / "masks",
               "-o", tmp_path / "o.ply", "--backend", "cpu", "--cluster", "not-an-address") == 2
    assert "--cluster not-an-address: not a scheduler address" in _last_error(capsys)


def test_views_too_large_are_refused_before_any_mask_is_read(inputs, tmp_path, capsys, monkeypatch):
    """Issue 29: `segment --scale 100` refused only after 4.2 GB, cameras of 20000x15000 after 2.6 GB;
    render-masks had no budget check at all. Now exit 3 with the figure and the budget, before allocating."""
    import blender_gsseg.core.lift.views as views

    assert segment(inputs, tmp_path / "l.ply") == 0
    capsys.readouterr()

    def unread(*args, **kwargs):
        raise AssertionError("masks read before the memory check")
    monkeypatch.setattr(views, "load_masks", unread)
    assert segment(inputs, tmp_path / "o.ply", "masks", "--scale", "100", "--memory-budget", "500") == 3
    message = _last_error(capsys)
    assert "a view of 6400x4800 pixels (at --scale 100)" in message and "memory budget of 500 MB" in message
    cameras = json.loads((inputs / "cameras.json").read_text())
    for camera in cameras:
        camera.update(width=20000, height=15000, fx=camera["fx"] * 312.5, fy=camera["fy"] * 312.5)
    (tmp_path / "huge.json").write_text(json.dumps(cameras))
    assert run("segment", inputs / "scene.ply", "--cameras", tmp_path / "huge.json", "--masks", inputs / "masks",
               "-o", tmp_path / "o.ply", "--backend", "cpu", "--memory-budget", "4000") == 3
    assert "a view of 20000x15000 pixels" in _last_error(capsys)
    assert run("render-masks", tmp_path / "l.ply", "--cameras", inputs / "cameras.json", "-o", tmp_path / "m",
               "--scale", "100", "--memory-budget", "500", "--backend", "cpu") == 3
    message = _last_error(capsys)
    assert "rendering a view of 6400x4800 pixels" in message and "memory budget of 500 MB" in message
    for camera in cameras:
        camera.update(width=100000, height=75000)
    (tmp_path / "huge.json").write_text(json.dumps(cameras))
    assert run("render-masks", tmp_path / "l.ply", "--cameras", tmp_path / "huge.json", "-o", tmp_path / "m",
               "--backend", "cpu") == 3  # the default budget, a quarter of RAM
    assert "rendering a view of 100000x75000 pixels" in _last_error(capsys)
    assert not (tmp_path / "o.ply").exists() and not (tmp_path / "m").exists()


def test_a_fifo_named_like_a_mask_is_skipped_not_read(inputs, tmp_path):
    """Issue 29: a FIFO named like a mask (lift_000.png) in the mask folder blocked segment (and eval) forever."""
    import shutil

    shutil.copytree(inputs / "masks", tmp_path / "masks")
    first = sorted(os.listdir(tmp_path / "masks"))[0]
    os.unlink(tmp_path / "masks" / first)
    os.mkfifo(tmp_path / "masks" / first)
    env = dict(os.environ, PYTHONPATH=REPO)
    for command in (["segment", str(inputs / "scene.ply"), "--cameras", str(inputs / "cameras.json"), "--masks",
                     str(tmp_path / "masks"), "-o", str(tmp_path / "o.ply"), "--backend", "cpu"],
                    ["eval", str(tmp_path / "masks"), str(inputs / "masks")]):
        process = subprocess.run([sys.executable, "-m", "blender_gsseg", *command], env=env, capture_output=True,
                                 text=True, timeout=120)
        assert process.returncode == 0, process.stderr
        assert f"{tmp_path / 'masks' / first}: skipped, not a regular file" in process.stderr

def test_silent_acceptance_became_errors_and_warnings(inputs, tmp_path, capsys):
    cameras = json.loads((inputs / "cameras.json").read_text())
    cameras[1]["img_name"] = cameras[0]["img_name"]
    (tmp_path / "dup.json").write_text(json.dumps(cameras))
    assert run("segment", inputs / "scene.ply", "--cameras", tmp_path / "dup.json", "--masks", inputs / "masks",
               "-o", tmp_path / "o.ply") == 2
    assert "two cameras have the image name" in _last_error(capsys)
    # one mask claimed by two cameras ('view_000.jpg' and 'view_000.png' both want view_000.png)
    cameras = json.loads((inputs / "cameras.json").read_text())
    cameras[1]["img_name"] = cameras[0]["img_name"] + ".jpg"
    cameras[0]["img_name"] = cameras[0]["img_name"] + ".png"
    (tmp_path / "twice.json").write_text(json.dumps(cameras))
    assert run("segment", inputs / "scene.ply", "--cameras", tmp_path / "twice.json", "--masks", inputs / "masks",
               "-o", tmp_path / "o.ply") == 2
    assert "would be used for two cameras" in _last_error(capsys)
    # labels that do not exist
    assert segment(inputs, tmp_path / "out.ply") == 0
    capsys.readouterr()
    for command in ("remove", "extract"):
        assert run(command, tmp_path / "out.ply", "--labels", "42", "-o", tmp_path / "r.ply") == 2
        assert "no label 42 in this scene (its labels: 0, 1, 2" in _last_error(capsys)
    # eval over 1 of 6 truth views says so
    (tmp_path / "pred").mkdir()
    first = sorted(os.listdir(inputs / "masks"))[0]
    (tmp_path / "pred" / first).write_bytes((inputs / "masks" / first).read_bytes())
    assert run("eval", tmp_path / "pred", inputs / "masks") == 0
    assert "only 1 of the 6 ground-truth views" in capsys.readouterr().err


def test_anti_aliased_masks_warn_and_read_as_binary(inputs, tmp_path, capsys):
    from PIL import ImageFilter

    (tmp_path / "soft").mkdir()
    for name in os.listdir(inputs / "masks"):
        with Image.open(inputs / "masks" / name) as image:
            binary = Image.fromarray((np.asarray(image) > 0).astype(np.uint8) * 255)
        binary.resize((256, 192), Image.NEAREST).filter(ImageFilter.GaussianBlur(2)).save(tmp_path / "soft" / name)
    assert run("segment", inputs / "scene.ply", "--cameras", inputs / "cameras.json", "--masks", tmp_path / "soft",
               "-o", tmp_path / "soft.ply", "--backend", "cpu", "--report", tmp_path / "soft.json") == 0
    err = capsys.readouterr().err
    assert "look like anti-aliased binary masks" in err and "--binary-threshold 128" in err
    assert len(json.loads((tmp_path / "soft.json").read_text())["label_ids"]) > 20
    assert run("segment", inputs / "scene.ply", "--cameras", inputs / "cameras.json", "--masks", tmp_path / "soft",
               "-o", tmp_path / "hard.ply", "--backend", "cpu", "--binary-threshold", "128", "--report",
               tmp_path / "hard.json") == 0
    assert "anti-aliased" not in capsys.readouterr().err
    assert json.loads((tmp_path / "hard.json").read_text())["label_ids"] == [0, 1]


# ----- found in review


def test_a_folder_output_rechecks_its_target_under_the_lock(inputs, tmp_path):
    from blender_gsseg.core.errors import BadInputError
    from blender_gsseg.core.files.commit import Commit

    target = tmp_path / "parts"
    target.mkdir()
    commit = Commit()
    folder = commit.folder(target, kind="split")
    (tmp_path / "parts" / "mine.txt").write_text("arrived while the run worked")
    open(folder.file(os.path.join(folder.path, "a.ply")), "wb").close()
    with pytest.raises(BadInputError, match="holds files"):
        commit.commit()
    assert sorted(os.listdir(target)) == ["mine.txt"] and temporaries(tmp_path) == []
    (target / "mine.txt").unlink()
    (target / "sub").mkdir()  # a folder (or a link) counts as content too
    assert segment(inputs, tmp_path / "out.ply") == 0
    assert run("split", tmp_path / "out.ply", "-o", target) == 2
    assert os.path.isdir(target / "sub")


def test_an_output_inside_an_input_folder_is_refused(inputs, tmp_path, capsys):
    masks = tmp_path / "masks"
    _copy_tree(inputs / "masks", masks)
    victim = masks / sorted(os.listdir(masks))[0]
    before = victim.read_bytes()
    assert run("segment", inputs / "scene.ply", "--cameras", inputs / "cameras.json", "--masks", masks, "-o",
               tmp_path / "out.ply", "--report", victim) == 2
    assert "may not replace an input" in capsys.readouterr().err and victim.read_bytes() == before
    assert run("segment", inputs / "scene.ply", "--cameras", inputs / "cameras.json", "--masks", masks, "-o",
               tmp_path / "out.ply", "--report", tmp_path / "out.gsseg.npz") == 2  # the report over the sidecar
    assert "two outputs" in capsys.readouterr().err and not (tmp_path / "out.ply").exists()


def test_without_hard_links_a_failed_rename_still_restores(inputs, tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")
    assert segment(inputs, tmp_path / "out.ply") == 0
    before = snapshot(tmp_path)
    monkeypatch.setattr(os, "link", no_links)  # FAT, exFAT, some network shares
    monkeypatch.setattr(os, "replace", Fail("replace", 2))  # the sidecar has landed, the PLY fails
    assert segment(inputs, tmp_path / "out.ply", "masks_b") == 2
    monkeypatch.undo()
    assert snapshot(tmp_path) == before and temporaries(tmp_path) == []


def test_relabel_refuses_to_land_over_an_input_another_run_rewrote(inputs, tmp_path, monkeypatch, capsys):
    import blender_gsseg.core.pipeline as pipeline

    out = tmp_path / "out.ply"
    assert segment(inputs, out) == 0
    real = pipeline.relabel_scene

    def meanwhile(path, gaussians, gamma):  # a segment lands on the same output while relabel works
        result = real(path, gaussians, gamma)
        assert segment(inputs, out, "masks_b") == 0
        return result
    monkeypatch.setattr(pipeline, "relabel_scene", meanwhile)
    code = run("relabel", out, "--gamma", "0.2")
    monkeypatch.undo()
    assert code == 2 and "changed while this command ran" in capsys.readouterr().err
    assert consistent(out)  # the newer run's pair stays, bound (relabel's would have mixed them)


def test_a_failed_copy_names_the_new_file(inputs, tmp_path, capsys):
    assert segment(inputs, tmp_path / "out.ply") == 0
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
    try:
        code = run("relabel", tmp_path / "out.ply", "--gamma", "0.1", "-o", tmp_path / "copy.ply")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert code == 2
    assert f"{tmp_path / 'copy.gsseg.npz'}: cannot write (file too large)" in capsys.readouterr().err
    assert not (tmp_path / "copy.ply").exists() and temporaries(tmp_path) == []
