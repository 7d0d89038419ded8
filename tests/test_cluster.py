"""Lifting on a real local Dask cluster (2 worker processes, 1 thread each): the cluster, `--workers 2`,
`--cluster ADDRESS` and single-process runs agree in the dense and bounded forms; a worker killed mid-run changes
nothing; Ctrl-C leaves no output and no worker behind; render-masks renders on the workers."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from oracles import require

distributed = require("distributed")
psutil = require("psutil")

pytestmark = pytest.mark.slow  # a real cluster of worker processes: half a minute for the module

from blender_gsseg.cli import main  # noqa: E402
from blender_gsseg.core.lift.sidecar import load_accumulation  # noqa: E402
from blender_gsseg.core.cluster import ClusterBackend, open_cluster  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians  # noqa: E402
from blender_gsseg.core.lift.views import build_views  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "blender_gsseg", "data", "demo")
SCENE, CAMERAS, MASKS = (os.path.join(DEMO, name) for name in ("scene_trained.ply", "cameras.json", "masks"))
SEGMENT = ["segment", SCENE, "--cameras", CAMERAS, "--masks", MASKS, "--scale", "0.5", "--backend", "cpu"]


@pytest.fixture(scope="module")
def client():
    with open_cluster(workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def scene_and_views():
    return read_gaussians(SCENE), build_views(CAMERAS, MASKS, scale=0.5)


@pytest.fixture(scope="module")
def single(scene_and_views):
    gaussians, views = scene_and_views
    return {mode: views.accumulate(gaussians, backend="cpu", mode=mode) for mode in ("dense", "bounded")}


def assert_same(cluster, single):
    """Labels identical, weights within 1e-6 relative."""
    assert (cluster.shares().solve(0.0)[0] == single.shares().solve(0.0)[0]).all()
    for name in ("weights", "total", "share_bg", "top_shares", "top_labels"):
        if hasattr(single, name):
            ours, theirs = getattr(cluster, name), getattr(single, name)
            np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6 * float(np.abs(theirs).max()))


@pytest.mark.parametrize("mode", ["dense", "bounded"])
@pytest.mark.parametrize("from_path", [True, False], ids=["scene read from its path", "scene scattered"])
def test_cluster_and_single_process_agree(client, scene_and_views, single, mode, from_path):
    gaussians, views = scene_and_views
    backend = ClusterBackend(client, "cpu", scene_path=SCENE if from_path else None)
    seen = []
    accumulation = views.accumulate(gaussians, backend=backend, mode=mode, progress=lambda d, t: seen.append(d))
    assert_same(accumulation, single[mode])
    assert backend._scenes[id(gaussians)][1][0] == ("path" if from_path else "scattered")
    # every view in some shard, progress over shards up to all the views; shards were spread over both workers
    assert seen[-1] == len(views) and seen == sorted(seen) and len(seen) > 2
    assert len(backend.bytes_sent) == len(seen) and max(backend.bytes_sent) < 20_000  # the views, not their maps


def test_a_scene_changed_since_it_was_read_is_not_read_from_its_path(client, scene_and_views):
    """The refinements accumulate a scene with a changed opacity: the workers must not read the file instead."""
    gaussians, views = scene_and_views
    changed = gaussians.with_float_property("opacity", gaussians.vertex["opacity"] - 2.0)
    backend = ClusterBackend(client, "cpu", scene_path=SCENE)
    accumulation = views.accumulate(changed, backend=backend)
    assert backend._scenes[id(changed)][1][0] == "scattered"
    assert_same(accumulation, views.accumulate(changed, backend="cpu"))


def test_a_worker_killed_mid_run_changes_nothing(client, scene_and_views, single):
    gaussians, views = scene_and_views
    backend = ClusterBackend(client, "cpu", scene_path=SCENE)
    pids = client.run(os.getpid)
    killed = []

    def kill_one(done, total):
        if not killed and done < total:
            victim = next(iter(pids.values()))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    accumulation = views.accumulate(gaussians, backend=backend, progress=kill_one)
    assert killed, "the run ended before a worker could be killed"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    assert_same(accumulation, single["dense"])
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_workers_pin_one_gpu_each():
    """A local cluster for the CUDA backend: worker k sees only GPU k (no GPU needed to check the pinning)."""
    with open_cluster(workers=2, gpus=True) as client:
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
    assert sorted(seen.values()) == ["0", "1"]


def test_cli_workers_and_cluster_write_what_a_single_process_writes(tmp_path, capsys):
    outputs = {}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cl:
        for name, extra in (("single", []), ("workers", ["--workers", "2"]),
                            ("cluster", ["--cluster", cl.scheduler_address])):
            out = tmp_path / f"{name}.ply"
            assert main([*SEGMENT, "-o", str(out), *extra]) == 0
            outputs[name] = (read_gaussians(out), load_accumulation(tmp_path / f"{name}.gsseg.npz"))
        reports = json.loads(capsys.readouterr().out.replace("}\n{", "},\n{").join("[]"))
    single_scene, single_weights = outputs["single"]
    for name in ("workers", "cluster"):
        scene, weights = outputs[name]
        assert (scene.vertex["gsseg_label"] == single_scene.vertex["gsseg_label"]).all(), name
        np.testing.assert_allclose(weights.weights, single_weights.weights, rtol=1e-6, atol=1e-9)
    assert [r["backend"] for r in reports] == ["cpu", "cluster", "cluster"]


def test_cli_render_masks_on_the_workers(tmp_path):
    labelled = tmp_path / "labelled.ply"
    assert main([*SEGMENT, "-o", str(labelled)]) == 0
    for name, extra in (("here", []), ("workers", ["--workers", "2"])):
        assert main(["render-masks", str(labelled), "--cameras", CAMERAS, "-o", str(tmp_path / name), "--scale",
                     "0.5", "--colour", "--backend", "cpu", *extra]) == 0
    written = sorted(f for f in os.listdir(tmp_path / "here") if f.endswith(".png"))
    assert len(written) == 24 and written == sorted(f for f in os.listdir(tmp_path / "workers") if f.endswith(".png"))
    for name in written:
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "workers" / name).read_bytes(), name


def test_ctrl_c_cancels_the_shards_and_leaves_nothing_behind(tmp_path):
    """Ctrl-C (SIGINT) once the first shard is in: exit 130, no output, and the worker processes are gone."""
    script = textwrap.dedent(f"""
        import json, os, signal, sys
        from blender_gsseg.cli import main
        from blender_gsseg.core import cluster

        accumulate = cluster.ClusterBackend.accumulate

        def interrupted(self, gaussians, views, n_labels, progress=None, cancel=None, dtype=None):
            def first_shard_in(done, total):
                with open({str(tmp_path / 'workers.json')!r}, 'w') as handle:
                    json.dump(list(self.client.run(os.getpid).values()), handle)
                os.kill(os.getpid(), signal.SIGINT)
            return accumulate(self, gaussians, views, n_labels, first_shard_in, cancel)

        cluster.ClusterBackend.accumulate = interrupted
        sys.exit(main({[*SEGMENT, "-o", str(tmp_path / "out.ply"), "--workers", "2"]!r}))
    """)
    process = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert process.returncode == 130, process.stderr
    assert process.stderr.strip().endswith("gsseg: cancelled"), process.stderr
    assert sorted(os.listdir(tmp_path)) == ["workers.json"]  # no output, no temporary file
    workers = json.loads((tmp_path / "workers.json").read_text())
    assert len(workers) == 2
    for pid in workers:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid



def test_ctrl_c_in_a_terminal_prints_no_worker_tracebacks(tmp_path):
    """Issue 29: Ctrl-C in a terminal reaches the whole process group; each Dask worker printed a
    KeyboardInterrupt traceback (46 lines) before "gsseg: cancelled". The workers now leave it to the client."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from blender_gsseg.cli import main
        from blender_gsseg.core import cluster

        accumulate = cluster.ClusterBackend.accumulate

        def interrupted(self, gaussians, views, n_labels, progress=None, cancel=None, dtype=None):
            def first_shard_in(done, total):
                os.killpg(os.getpgid(0), signal.SIGINT)  # as the terminal sends it: to every process
            return accumulate(self, gaussians, views, n_labels, first_shard_in, cancel)

        cluster.ClusterBackend.accumulate = interrupted
        sys.exit(main({[*SEGMENT, "-o", str(tmp_path / "out.ply"), "--workers", "2"]!r}))
    """)
    process = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                             start_new_session=True)
    assert process.returncode == 130, process.stderr
    assert process.stderr.strip() == "gsseg: cancelled", process.stderr
    assert os.listdir(tmp_path) == []

def test_missing_dask_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main([*SEGMENT, "-o", "/nonexistent/out.ply", "--workers", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        "gsseg: error: --workers and --cluster need Dask distributed: pip install 'blender-gsseg[cluster]'")


def test_the_memory_budget_is_per_worker(client):
    from blender_gsseg.core.cluster import worker_memory_budget
    from blender_gsseg.core.errors import default_memory_budget

    assert worker_memory_budget(client, workers=2) == default_memory_budget() // 2
    limits = [w["memory_limit"] for w in client.scheduler_info()["workers"].values()]
    assert worker_memory_budget(client) == min(limits) // 4 > 0


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_a_worker_count_below_one_is_one_clear_line(tmp_path, capsys, workers):
    assert main([*SEGMENT, "-o", str(tmp_path / "out.ply"), "--workers", workers]) == 2
    assert capsys.readouterr().err.strip() == f"gsseg: error: --workers {workers}: must be at least 1"
    assert os.listdir(tmp_path) == []


def test_per_view_ids_associate_the_same_on_the_cluster(client, scene_and_views, tmp_path):
    """The association's per-view pass shards by view over the workers (several views' slot maps per call) and
    gives the instances and labels of a single process, here on SAM-style folders of the demo's masks."""
    from PIL import Image

    from blender_gsseg.core.pipeline import segment_scene
    from synthetic.sam_folders import write_sam_folders

    gaussians, views = scene_and_views
    maps = [np.asarray(Image.open(os.path.join(MASKS, camera.image_name + ".png")), np.int32)
            for camera in views.cameras]
    write_sam_folders(tmp_path, [camera.image_name for camera in views.cameras], maps, seed=1)
    results = [segment_scene(gaussians, CAMERAS, str(tmp_path), scale=0.5, backend=backend)
               for backend in ("cpu", ClusterBackend(client, "cpu", scene_path=SCENE))]
    single, cluster = (result.report["association"] for result in results)
    assert cluster["n_instances"] == single["n_instances"] >= 2
    assert [i["gaussians"] for i in cluster["instances"]] == [i["gaussians"] for i in single["instances"]]
    assert (results[0].labels == results[1].labels).all()
