"""Lifting on a Dask distributed cluster: the accumulation sharded over the views, one backend per worker.

A lift is a sum over views, so shards need no communication but the final reduction. :class:`ClusterBackend`
is a :class:`~.raster.backends.Backend`: its ``accumulate`` splits the views into contiguous shards, each
worker accumulates its shards on its own backend (``inner``: 'auto', 'cpu' or 'cuda') and returns the float64
partial sum, and the client adds the partial sums up in shard order, so the result does not depend on which
worker ran what. Everything that accumulates through a backend therefore shards the same way: the dense form,
each label pass of the bounded form (passes one after another, so the client holds one pass at a time, as the
single-process merge does), the folds of ``--gamma auto`` and the refinements' passes. Renders run on the
client's own backend, except :meth:`ClusterBackend.map_in_order`, which ``render-masks`` uses
to render its views on the workers while the client writes them.

The scene reaches each worker once: read from its path where every worker can read that file (a shared disk),
else scattered from the client (the geometry only, not the colours). A worker that dies has its shards re-run
elsewhere (Dask reschedules lost tasks; ``retries`` covers exceptions), with the same result. Cancelling (Esc,
Ctrl-C) cancels the futures.

Needs ``dask[distributed]`` (the ``cluster`` extra). :func:`open_cluster` starts a local cluster of worker
processes (``workers=N``, one thread each; with ``gpus=True`` each worker sees one GPU through
CUDA_VISIBLE_DEVICES) or connects to a running scheduler (``address='tcp://HOST:PORT'``).
"""

from __future__ import annotations

import collections.abc
import contextlib
import functools
import os

import numpy as np

from .raster.backends import get_backend
from .errors import BadInputError, CancelledError, GssegError

GEOMETRY = ("x", "y", "z", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
SHARDS_PER_WORKER = 4  # more shards than workers: a slow or restarted worker holds up less of the job
RETRIES = 2


def import_distributed():
    try:
        import distributed
    except ImportError:
        raise BadInputError("--workers and --cluster need Dask distributed: pip install 'blender-gsseg[cluster]'") \
            from None
    return distributed


@contextlib.contextmanager
def open_cluster(workers: int | None = None, address: str | None = None, *, gpus: bool = False,
                 memory_limit: int | None = None):
    """A ``distributed.Client``: on a new local cluster of ``workers`` processes (one thread each; ``gpus``: the
    k-th worker sees only GPU k), or on the scheduler at ``address``. The local cluster is closed on exit."""
    distributed = import_distributed()
    import logging

    for name in ["distributed", *logging.root.manager.loggerDict]:  # its INFO lines are not the user's business
        if name.startswith("distributed"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if address is not None:
        try:
            client = distributed.Client(address, timeout="10s")
        except (OSError, TimeoutError) as error:
            raise BadInputError(f"--cluster {address}: no Dask scheduler answers there ({error})") from None
        except (ValueError, TypeError) as error:  # distributed's address parsing
            raise BadInputError(f"--cluster {address}: not a scheduler address, e.g. tcp://HOST:PORT "
                                f"({error})") from None
        with client:
            yield client
        return
    if workers is None or workers < 1:
        raise BadInputError(f"--workers {workers}: must be at least 1")
    # read by the worker processes as they start; their failures reach the client with the tasks that failed
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")
    specs = {}
    for k in range(workers):
        # one thread per worker, numba's included (its pool would otherwise take every core in every worker)
        options = {"nthreads": 1, "memory_limit": memory_limit or "auto", "dashboard": False,
                   "env": {"NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS", "1")},
                   "preload": [__name__]}  # dask_setup below: Ctrl-C is the client's to handle
        if gpus:
            options["env"]["CUDA_VISIBLE_DEVICES"] = str(k)
        specs[f"worker-{k}"] = {"cls": distributed.Nanny, "options": options}
    cluster = distributed.SpecCluster(workers=specs, scheduler={"cls": distributed.Scheduler, "options": {
        "dashboard": False, "dashboard_address": ":0", "host": "127.0.0.1"}})
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def dask_setup(worker):
    """Run in each worker process of a local cluster as it starts (a Dask preload): the worker ignores SIGINT.
    Ctrl-C in a terminal reaches the whole process group; the client cancels and closes the cluster, which
    ends the workers, where each would otherwise print a KeyboardInterrupt traceback of its own."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_memory_budget(client, workers: int | None = None) -> int:
    """The default ``--memory-budget``, per worker: a quarter of RAM divided by the local workers, or a
    quarter of the smallest memory limit of a running cluster's workers (a quarter of this machine's RAM when
    they have none)."""
    from .errors import default_memory_budget

    if workers:
        return default_memory_budget() // workers
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info().get("workers", {}).values()]
    limits = [limit for limit in limits if limit > 0]
    return min(limits) // 4 if limits else default_memory_budget()


class ClusterBackend:
    """The :class:`~.raster.backends.Backend` over a Dask cluster (module docstring): ``accumulate`` and
    ``map_in_order`` run on the workers, the renders on ``inner`` here."""

    name = "cluster"

    def __init__(self, client, inner: str = "auto", scene_path: str | os.PathLike | None = None):
        """``scene_path``: the file the scenes given to :meth:`accumulate` were read from; workers that can read
        it load it from there when it holds the very geometry of the scene at hand (a scene changed since, e.g.
        with a segmentation opacity, is scattered)."""
        self.client = client
        self.inner = inner
        self.local = get_backend(inner)
        self.scene_path = None if scene_path is None else os.path.abspath(os.fspath(scene_path))
        self._scenes = {}  # id(gaussians) -> (gaussians, what the workers load it from)
        self.bytes_sent = []  # per shard: the bytes of its task's arguments (the scene excepted)
        self.bytes_returned = []  # per shard: its partial sum

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def _scene_on_workers(self, gaussians):
        """What a task names the scene by: its path, when every worker can read that very file, or the
        scattered geometry (one copy per worker)."""
        known = self._scenes.get(id(gaussians))
        if known is not None and known[0] is gaussians:
            return known[1]
        reference = None
        stamp = _file_stamp(self.scene_path) if self.scene_path else None
        if stamp is not None:  # every worker reads that file, and finds this very geometry in it
            digest = geometry_digest(gaussians)
            seen = self.client.run(_file_digest, *stamp)
            if seen and all(found == digest for found in seen.values()):
                reference = ("path", stamp)
        if reference is None:
            [future] = self.client.scatter([_geometry_of(gaussians)], broadcast=True, hash=False)
            reference = ("scattered", future)
        self._scenes = {id(gaussians): (gaussians, reference)}  # one scene at a time
        return reference

    def accumulate(self, gaussians, views, n_labels, progress=None, cancel=None, dtype=np.float32):
        """As the backends' ``accumulate``: float32 [n_labels, N], the sum over ``views`` (a sequence of
        (camera, label index map), e.g. :class:`.accumulate.ViewPairs`) done in shards on the workers."""
        import pickle

        count = len(views)
        n = len(gaussians)
        total = np.zeros((int(n_labels), n), dtype=np.float64)
        if count == 0:
            return total.astype(dtype)
        scene = self._scene_on_workers(gaussians)
        n_shards = min(count, max(1, self.n_workers) * SHARDS_PER_WORKER)
        bounds = np.linspace(0, count, n_shards + 1).round().astype(int)
        shards = [_ViewShard(views, int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        futures = [self.client.submit(_accumulate_shard, scene, shard, int(n_labels), self.inner, pure=False,
                                      retries=RETRIES, key=f"gsseg-accumulate-{k}-{os.urandom(4).hex()}")
                   for k, shard in enumerate(shards)]
        self.bytes_sent = [len(pickle.dumps(shard)) for shard in shards]
        self.bytes_returned = []
        done_views = 0
        try:
            results = {}
            next_shard = 0
            for future in _completed(self.client, futures, cancel):
                k = futures.index(future)
                results[k] = future.result()
                self.bytes_returned.append(results[k].nbytes)
                done_views += len(shards[k])
                while next_shard in results:  # the reduction in shard order, whatever order they finish in
                    total += results.pop(next_shard)
                    next_shard += 1
                if progress is not None:
                    progress(done_views, count)
        except BaseException:
            self.client.cancel(futures, force=True)
            raise
        return total.astype(dtype)

    # the renders: one view each, on the client's own backend
    def render_colour(self, gaussians, camera, background=(0.0, 0.0, 0.0), colours=None):
        return self.local.render_colour(gaussians, camera, background, colours)

    def render_alpha_depth(self, gaussians, camera, include_mask=None):
        return self.local.render_alpha_depth(gaussians, camera, include_mask)

    def render_label_weights(self, gaussians, camera, groups, n_groups):
        return self.local.render_label_weights(gaussians, camera, groups, n_groups)

    def map_in_order(self, function: collections.abc.Callable, items: collections.abc.Sequence, *shared,
                     cancel=None) -> collections.abc.Iterator:
        """``function(item, *shared)`` for each item on the workers (``shared`` sent once), yielded in the
        order of ``items`` while later ones still run."""
        shared_futures = self.client.scatter(list(shared), broadcast=True, hash=False) if shared else []
        futures = [self.client.submit(function, item, *shared_futures, pure=False, retries=RETRIES)
                   for item in items]
        try:
            for future in futures:
                if cancel is not None and cancel():
                    raise CancelledError("cancelled")
                yield future.result()
        finally:
            pending = [future for future in futures if not future.done()]
            if pending:
                self.client.cancel(pending, force=True)


def map_in_order(backend, function, items, *shared, cancel=None):
    """``function(item, *shared)`` for each item, in order: on the workers of a :class:`ClusterBackend`, else
    here, one after another."""
    if isinstance(backend, ClusterBackend):
        yield from backend.map_in_order(function, items, *shared, cancel=cancel)
        return
    for item in items:
        if cancel is not None and cancel():
            raise CancelledError("cancelled")
        yield function(item, *shared)


def _completed(client, futures, cancel):
    """The futures as they finish; ``cancel()`` (and Ctrl-C) checked every half second while waiting."""
    import distributed

    pending = distributed.as_completed(futures)
    remaining = len(futures)
    while remaining:
        if cancel is not None and cancel():
            raise CancelledError("cancelled")
        batch = pending.next_batch(block=False) if pending.has_ready() else []
        if not batch:
            try:
                distributed.wait([f for f in futures if not f.done()], timeout=0.5, return_when="FIRST_COMPLETED")
            except distributed.TimeoutError:
                pass
            continue
        for future in batch:
            if future.status == "error":
                error = future.exception()
                if isinstance(error, GssegError):
                    raise error
                raise RuntimeError(f"a cluster worker failed: {error!r}") from error
            remaining -= 1
            yield future


class _ViewShard(collections.abc.Sequence):
    """Views ``lo`` to ``hi`` of a view sequence, pickled with only those views' cameras and map readers."""

    def __init__(self, views, lo, hi):
        from .lift.accumulate import ViewPairs
        from .lift.views import Picked

        if isinstance(views, ViewPairs):
            self.views = ViewPairs(views.cameras[lo:hi], Picked(views.index_maps, list(range(lo, hi))), views.lookup)
        else:
            self.views = [views[k] for k in range(lo, hi)]

    def __len__(self):
        return len(self.views)

    def __getitem__(self, index):
        return self.views[index]


# ----- on the workers


def _file_stamp(path):
    try:
        return (path, os.path.getsize(path), os.stat(path).st_mtime_ns)
    except OSError:
        return None


def geometry_digest(gaussians) -> str:
    """A digest of what the walk reads of a scene (positions, opacities, scales, rotations)."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for name in GEOMETRY:
        digest.update(np.ascontiguousarray(gaussians.vertex[name], dtype=np.float32).tobytes())
    return digest.hexdigest()


def _file_digest(path, size, mtime_ns):
    if _file_stamp(path) != (path, size, mtime_ns):
        return None
    try:
        return geometry_digest(_loaded(path, size, mtime_ns))
    except Exception:  # unreadable here: the client scatters the scene instead
        return None


@functools.lru_cache(maxsize=1)
def _loaded(path, size, mtime_ns):
    """The scene at ``path`` (geometry only), read once per process for a given file state."""
    from .files.splats import read_gaussians

    return _geometry_of(read_gaussians(path))


def _geometry_of(gaussians):
    """The scene with only what the walk reads (positions, opacities, scales, rotations)."""
    return gaussians.without_properties([n for n in gaussians.property_names if n not in GEOMETRY])


@functools.lru_cache(maxsize=4)
def _worker_backend(name):
    return get_backend(name)


def _accumulate_shard(scene, views, n_labels, inner):
    """A worker's shard: float64 [n_labels, N], the sum over its views."""
    kind, value = scene
    gaussians = _loaded(*value) if kind == "path" else value
    return _worker_backend(inner).accumulate(gaussians, views, n_labels, dtype=np.float64)
