"""The one way gsseg writes files: outputs that belong together land together, or none does.

A :class:`Commit` collects a command's outputs (files, and folders of files). Each is written to a temporary
beside its target (``.gsseg-RUN-N.part[.EXT]``, or a staging folder ``.gsseg-RUN-N.part``: short, so any name
the file system allows works as a target); nothing the user had is touched while the command works.
:meth:`Commit.commit` then, holding the folder's lock (``.gsseg.lock``, so two runs writing the same outputs
never interleave), fsyncs every temporary and renames them into place in the order they were added, with Ctrl-C
and SIGTERM held back until the last rename. A rename that fails puts back what was there before (kept as a hard
link, ``.gsseg-RUN-N.old``, while renaming). A failure or a signal before the commit removes only our temporaries.

Each run that writes in a folder keeps a run record there, ``.gsseg-RUN.run`` (JSON: the temporaries it made and,
while renaming, a journal of the renames), locked (flock) for as long as the run lives. The kernel drops that
lock when the process dies, whatever its PID namespace or host (NFS), so the next run that writes in the folder
tells a live run from a dead one by the lock alone, never by a process id. Only the temporaries a dead run's
record lists are ever removed (a user's file with a temporary-like name is never touched), and a run killed
between its renames is rolled back: the files it had kept aside are put back, so the previous outputs come back
together (:func:`recover_interrupted`).

New files get the mode ``0666 & ~umask``; a replaced file keeps its mode. Errors name the user's path and the
operating system's reason. Outputs that are also inputs are refused before anything is written.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import re
import secrets
import shutil
import signal
import stat
import sys
import threading
import time

from ..errors import BadInputError, GssegError

LOCK_NAME = ".gsseg.lock"
LOCK_TIMEOUT_S = 600.0  # a second run waits this long for the first to commit, then refuses
MANIFEST_NAME = "gsseg-manifest.json"
_RECORD_RE = re.compile(r"^\.gsseg-(?P<token>[0-9a-f]{12})\.run$")
STALE_RECORD_S = 86400.0  # where the file system has no locks: a run record untouched this long is a dead run's
MAX_EXT = 32  # a temporary keeps its target's extension (for writers that look at it) up to this length
_REASONS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EROFS: "read-only file system",
            errno.ENOENT: "no such file or folder", errno.ENOTDIR: "not a folder", errno.EISDIR: "is a folder",
            errno.EXDEV: "on another file system"}


class WriteError(GssegError):
    """Writing an output failed; the previous outputs are as they were."""

    exit_code = 2


def os_reason(error: OSError) -> str:
    return _REASONS.get(error.errno, error.strerror or str(error))


def same_path(a, b) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder (also through links), or would."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(os.fspath(a)) == os.path.realpath(os.fspath(b))


def _inside(path, folder) -> bool:
    path, folder = os.path.realpath(os.fspath(path)), os.path.realpath(os.fspath(folder))
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class Commit:
    """A group of outputs written together (see the module docstring).

    ``inputs``: paths the command reads; an output that is one of them (or a folder output holding one) is
    refused with :class:`BadInputError`, except the paths in ``rewrites`` (``relabel`` rewriting its input in
    place). Use as a context manager: the outputs land when the block ends without an exception; otherwise the
    temporaries (and the folders made for them) are removed and nothing changes."""

    def __init__(self, inputs=(), *, rewrites=(), lock_timeout: float = LOCK_TIMEOUT_S):
        self.inputs = [os.fspath(p) for p in inputs if p is not None]
        self.rewrites = [os.fspath(p) for p in rewrites]
        self.rewrite_stamps = {path: _stamp(path) for path in self.rewrites}  # taken before the input is read
        self.lock_timeout = lock_timeout
        self.token = secrets.token_hex(6)
        self.entries = []  # (target, temporary, kind): kind False for a file, the command for a folder
        self.records = {}  # folder -> _Record: this run's record in each folder it writes in
        self.identities = {}  # temporary -> (st_dev, st_ino) of a staging folder as made
        self.made = []  # folders made for the outputs, removed again when nothing lands
        self.overwrites = {}  # folder target -> whether --overwrite was given
        self.done = False

    # ----- declaring outputs

    def file(self, target) -> str:
        """A temporary path to write ``target`` to (same extension, for writers that look at it). The file
        exists, empty, with the mode the target will have."""
        target = _resolved(target)
        self._check_target(target)
        folder, name = os.path.split(target)
        self.made += _make_folder(folder)
        ext = os.path.splitext(name)[1]
        temp = self._temporary(target, ".part" + (ext if len(ext) <= MAX_EXT else ""), False)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        except OSError as error:
            raise WriteError(f"{target}: cannot write ({os_reason(error)})") from None
        os.close(fd)
        with contextlib.suppress(OSError):
            if os.path.isfile(target):
                os.chmod(temp, stat.S_IMODE(os.stat(target).st_mode))
        self.entries.append((target, temp, False))
        return temp

    def user_path(self, path) -> str:
        return os.path.abspath(os.fspath(path))

    def folder(self, target, *, kind: str, overwrite: bool = False) -> StagingFolder:
        """A staging folder for the folder output ``target`` (``kind``: the command writing it, e.g. 'split'),
        to write the files into (pass it as ``commit`` to the writers, or write to ``.file(path)``). An existing
        target must be empty, or hold only files listed in its gsseg manifest, written by the same ``kind``,
        with ``overwrite`` (the demo replaces its own folder: ``overwrite=True``); anything else is refused
        before anything is written. The manifest is written at the commit."""
        target = _resolved(target)
        self._check_target(target)
        if os.path.exists(target):
            _check_replaceable(target, kind, overwrite)
        parent, name = os.path.split(target)
        self.made += _make_folder(parent)
        staging = self._temporary(target, ".part", True)
        try:
            os.mkdir(staging, 0o777)
            status = os.stat(staging)
        except OSError as error:
            raise WriteError(f"{target}: cannot write ({os_reason(error)})") from None
        self.identities[staging] = (status.st_dev, status.st_ino)
        self.entries.append((target, staging, kind))
        self.overwrites[target] = overwrite
        return StagingFolder(staging, target)

    def _temporary(self, target, suffix, is_folder) -> str:
        """A new temporary's path beside ``target``, listed in this run's record in that folder first (so a
        run that finds it after a crash can prove it is ours)."""
        folder, name = os.path.split(target)
        record = self.records.get(folder)
        if record is None:
            try:
                record = _Record.create(folder, self.token)
            except OSError as error:
                raise WriteError(f"{target}: cannot write ({os_reason(error)})") from None
            self.records[folder] = record
        temp = os.path.join(folder, f".gsseg-{self.token}-{len(self.entries)}{suffix}")
        try:
            record.update(temporaries=record.data["temporaries"]
                          + [{"name": os.path.basename(temp), "target": name, "folder": is_folder}])
        except OSError as error:
            raise WriteError(f"{target}: cannot write ({os_reason(error)})") from None
        return temp

    def check_outputs(self, targets):
        """Refuse, before any work, outputs that are inputs or that are given twice (None entries skipped)."""
        targets = [_resolved(t) for t in targets if t is not None]
        for number, target in enumerate(targets):
            if any(same_path(target, other) for other in targets[:number]):
                raise BadInputError(f"{target}: given as two outputs of one command")
            self._check_target(target)

    def _check_target(self, target):
        if any(same_path(target, t) for t, _, _ in self.entries):
            raise BadInputError(f"{target}: given as two outputs of one command")
        _check_name_fits(target)
        for source in self.inputs:
            if any(same_path(source, r) and same_path(r, target) for r in self.rewrites):
                continue
            inside_input = os.path.isdir(source) and _inside(target, source)  # a file among the masks, ...
            if same_path(source, target) or inside_input or (os.path.isdir(target) and _inside(source, target)):
                raise BadInputError(f"{target}: an output may not replace an input of the command ({source})")

    # ----- landing

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None:
            self.commit()
        else:
            self.discard()
        return False

    def discard(self):
        """Remove our temporaries and the folders made for them; the targets are untouched."""
        with _signals_held():  # a second Ctrl-C does not leave half the clean-up undone
            self._discard()

    def _discard(self):
        for _target, temp, is_folder in self.entries:
            _remove(temp, is_folder)
        self.entries = []
        for record in self.records.values():
            record.close(remove=True)
        self.records = {}
        for folder in reversed(self.made):
            with contextlib.suppress(OSError):
                if set(os.listdir(folder)) <= {LOCK_NAME}:
                    _remove(os.path.join(folder, LOCK_NAME), False)
                    os.rmdir(folder)
        self.made = []

    def commit(self):
        """fsync, then rename every temporary into place, in order, under the folder locks."""
        if self.done:
            return
        try:
            with _locks(self._folders(), self.lock_timeout):
                for folder in self._folders():
                    remove_stale_temporaries(folder, mine=self.token)
                for target, temp, kind in self.entries:  # another program removed them meanwhile: never land
                    self._check_temporary(target, temp, kind)
                for path, stamp in self.rewrite_stamps.items():  # another run rewrote it meanwhile
                    if _stamp(path) != stamp:
                        raise BadInputError(f"{path}: changed while this command ran (another gsseg run?); "
                                            f"nothing was written, run it again")
                for target, temp, kind in self.entries:
                    if kind:
                        if os.path.lexists(target):  # again, under the lock: files may have come meanwhile
                            _check_replaceable(target, kind, self.overwrites[target])
                        _write_manifest(target, temp, kind, self.token)
                    _fsync_tree(target, temp)
                hook("before-first-rename")
                targets = [target for target, _, _ in self.entries]
                landed = False
                try:
                    with _signals_held():
                        self._rename_all()
                        landed = True
                except BaseException as error:
                    if landed:  # a signal held back during the renames, raised now: the outputs are in place
                        self.done = True
                        error.gsseg_landed = targets
                    raise
        except BaseException:
            self.discard()
            raise
        self.done = True

    def _check_temporary(self, target, temp, kind):
        try:
            status = os.lstat(temp)
        except OSError:
            status = None
        same = status is not None and (not kind or (status.st_dev, status.st_ino) == self.identities.get(temp))
        if not same:
            raise WriteError(f"{target}: its temporary {temp} was removed while this command ran (by another "
                             f"program?); nothing was written, run it again")

    def _folders(self) -> set[str]:
        """The folders the outputs land in."""
        return {os.path.dirname(target) for target, _, _ in self.entries}

    def _rename_all(self):
        kept, landed = [], []  # (target, backup) of what was there; targets renamed so far
        backups = {temp: _backup_path(temp) for _target, temp, _kind in self.entries}
        try:
            self._journal("renaming", backups)  # a run that finds this after a kill puts the previous files back
            for number, (target, temp, kind) in enumerate(self.entries):
                if number:
                    hook("between-renames")
                backup = _keep_aside(target, kind, backups[temp])
                kept.append((target, backup, kind))
                _land(temp, target, kind)
                landed.append(target)
            self._journal("landed", backups)  # from here on, a kill leaves the new outputs (backups go)
            hook("after-last-rename")
        except BaseException as error:
            for target, backup, kind in reversed(kept):  # put back what was there
                with contextlib.suppress(OSError):
                    if target in landed:
                        if backup is None:
                            _remove(target, kind)
                        else:
                            if kind:
                                _remove(target, True)
                            os.replace(backup, target)
                    elif backup is not None:
                        if kind:  # the folder was moved aside: move it back
                            os.replace(backup, target)
                        else:  # the file is still in place: drop the link (a rename onto it does nothing)
                            os.unlink(backup)
            if isinstance(error, OSError):
                where = getattr(error, "filename", None)
                target = next((t for t, temp, _ in self.entries if where in (t, temp)), self.entries[0][0])
                raise WriteError(f"{target}: cannot write ({os_reason(error)})") from None
            raise
        for folder in self._folders():
            _fsync_folder(folder, strict=False)
        for _target, backup, kind in kept:
            if backup is not None:
                _remove(backup, kind)
        self.entries = []
        for record in self.records.values():
            record.close(remove=True)
        self.records = {}

    def _journal(self, phase, backups):
        """Write each folder's record with the renames to come (``phase`` 'renaming') or done ('landed'),
        flushed to the disk before the first rename."""
        for folder, record in self.records.items():
            renames = []
            for target, temp, kind in self.entries:
                if os.path.dirname(target) != folder:
                    continue
                status = os.lstat(temp) if phase == "renaming" else None
                identity = [status.st_dev, status.st_ino] if status else record.data["renames"][len(renames)]["new"]
                renames.append({"target": os.path.basename(target), "temp": os.path.basename(temp),
                                "backup": os.path.basename(backups[temp]), "folder": bool(kind), "new": identity})
            record.update(phase=phase, renames=renames)


class StagingFolder:
    """The staging folder of a folder output: files written here land with the commit (``.file(path)`` is the
    path itself, for writers that take a ``commit``)."""

    def __init__(self, path, target):
        self.path = path
        self.target = target

    def user_path(self, path) -> str:
        """Where ``path`` (inside the staging folder) will be once the folder lands: the name errors give."""
        relative = os.path.relpath(os.path.abspath(os.fspath(path)), self.path)
        return os.path.join(self.target, relative)

    def file(self, path) -> str:
        path = os.path.abspath(os.fspath(path))
        if not _inside(path, self.path):
            raise ValueError(f"{path} is not inside the staging folder {self.path}")
        if not os.path.isdir(self.path):  # removed by another program: never made again, never landed
            raise WriteError(f"{self.target}: its staging folder {self.path} was removed while this command ran "
                             f"(by another program?); nothing was written, run it again")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as error:
            raise WriteError(f"{self.user_path(path)}: cannot write ({os_reason(error)})") from None
        return path


@contextlib.contextmanager
def output_path(path, commit: Commit | StagingFolder | None = None):
    """Yield the path to write ``path`` to, for writers that open files themselves (np.savez: a zip file given
    a path closes itself cleanly when a write fails); part of ``commit`` when given, else landing on its own."""
    with contextlib.ExitStack() as stack:
        if commit is None:
            commit = stack.enter_context(Commit())
        temp = commit.file(path)
        try:
            yield temp
        except OSError as error:
            raise WriteError(f"{_user_path(path, commit)}: cannot write ({os_reason(error)})") from None


@contextlib.contextmanager
def output_file(path, mode="wb", commit: Commit | StagingFolder | None = None):
    """Yield a file object for ``path``: part of ``commit`` (a :class:`Commit` or a :class:`StagingFolder`)
    when given, else landing on its own."""
    with output_path(path, commit) as temp, _open(_user_path(path, commit), temp, mode) as handle:
        yield handle


def _user_path(path, commit):
    """The name an error gives: where ``path`` lands (a file of a staging folder: inside its target)."""
    return os.path.abspath(os.fspath(path)) if commit is None else commit.user_path(path)


@contextlib.contextmanager
def _open(target, temp, mode):
    try:
        handle = open(temp, mode)
    except OSError as error:
        raise WriteError(f"{target}: cannot write ({os_reason(error)})") from None
    try:
        with handle:
            yield handle
    except OSError as error:
        raise WriteError(f"{target}: cannot write ({os_reason(error)})") from None
    except ValueError as error:  # e.g. zipfile after a failed write: "seek of closed file"
        raise WriteError(f"{target}: cannot write ({error})") from None


# ----- test hooks: GSSEG_TEST_SIGNAL_AT="POINT:SIGNAME" makes the process signal itself at that point


def hook(point: str):
    wanted = os.environ.get("GSSEG_TEST_SIGNAL_AT")
    if wanted and wanted.split(":")[0] == point:
        os.kill(os.getpid(), getattr(signal, wanted.split(":")[1]))
        time.sleep(0.2)  # a held signal waits for the commit; the others arrive here


# ----- helpers


def _make_folder(folder):
    """Make ``folder`` and its missing parents; returns the folders made, outermost first."""
    missing = []
    while folder and not os.path.isdir(folder):
        if os.path.lexists(folder):
            raise WriteError(f"{folder}: is a file, not a folder")
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    made = []
    try:
        for path in reversed(missing):
            os.mkdir(path)
            made.append(path)
    except OSError as error:
        for path in reversed(made):  # those made before the failure go again
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise WriteError(f"{missing[0]}: cannot create the folder ({os_reason(error)})") from None
    return made


def _remove(path, is_folder):
    with contextlib.suppress(OSError):
        if is_folder and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _fsync_file(path, folder=False):
    # Windows' fsync (FlushFileBuffers) needs write access; a folder opens read-only (POSIX only)
    fd = os.open(path, os.O_RDONLY if folder else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder, strict=True):
    """fsync a folder (its entries). Some file systems refuse that (EINVAL): fine. After the renames
    (``strict=False``) nothing is raised: the outputs have landed, and this only hurries them to the disk."""
    if sys.platform == "win32":  # folders cannot be opened for fsync there; NTFS journals the renames
        return
    try:
        _fsync_file(folder, folder=True)
    except OSError as error:
        if strict and error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise


def _fsync_tree(target, temp):
    try:
        if os.path.isdir(temp):
            for root, _dirs, names in os.walk(temp):
                for name in names:
                    _fsync_file(os.path.join(root, name))
                _fsync_folder(root)
        else:
            _fsync_file(temp)
    except OSError as error:
        raise WriteError(f"{target}: cannot write ({os_reason(error)})") from None


def _backup_path(temp):
    """Where the file or folder a temporary replaces is kept aside while renaming: ``.gsseg-RUN-N.old``."""
    return temp[:temp.rindex(".part")] + ".old"


def _keep_aside(target, is_folder, backup):
    """Keep what is at ``target`` until the commit has landed (at ``backup``): a hard link to a file (a copy
    where the file system has none), the folder renamed. None when there is nothing."""
    if not os.path.lexists(target):
        return None
    if is_folder:
        os.replace(target, backup)
        return backup
    try:
        os.link(target, backup)
    except OSError:  # no hard links here (FAT, exFAT, some network shares): a copy keeps it
        shutil.copy2(target, backup)
    return backup


def _land(temp, target, is_folder):
    if is_folder and os.path.isdir(target):  # an empty folder we were allowed to replace
        os.rmdir(target)
    os.replace(temp, target)


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM back while renaming (they take effect right after), so a commit is never cut
    halfway by them; SIGKILL can still cut it, and the run id binding then refuses the mixed pair. Python runs
    signal handlers in the main thread only, so a handler that notes the signal holds it back reliably (a
    signal mask would not: another thread, numba's, may take the signal)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived = []
    # a handler installed outside Python (getsignal() is None, e.g. by an embedding host) cannot be put back
    held = [number for number in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(number) is not None]
    previous = {number: signal.signal(number, lambda number, frame: arrived.append(number)) for number in held}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in arrived[:1]:
            signal.raise_signal(number)


@contextlib.contextmanager
def _locks(folders, timeout):
    """The lock of each folder (sorted, so two commits never wait on each other)."""
    import filelock

    with contextlib.ExitStack() as stack:
        for folder in sorted({os.path.realpath(folder) for folder in folders}):  # one folder, one lock
            lock = filelock.FileLock(os.path.join(folder, LOCK_NAME), timeout=timeout)
            try:
                stack.enter_context(lock)
            except filelock.Timeout:
                raise BadInputError(f"{folder}: another gsseg run is writing here (waited {timeout:.0f} s for "
                                    f"{LOCK_NAME}); try again when it has finished") from None
            except OSError as error:
                raise WriteError(f"{folder}: cannot write ({os_reason(error)})") from None
        yield


def remove_stale_temporaries(folder, mine=None) -> list[str]:
    """Clean up after the runs that died while writing in ``folder`` (their record's lock is free): remove the
    temporaries their record lists, and roll back one killed between its renames (the kept-aside files put back).
    Live runs, other programs' files and anything a record does not list are left alone; ``mine``: our own
    run's token. Returns the targets put back."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    restored = []
    for name in sorted(names):
        match = _RECORD_RE.match(name)
        if not match or match.group("token") == mine:
            continue
        record = _Record.open_dead(os.path.join(folder, name))
        if record is not None:
            whole = False
            try:
                back, whole = record.clean_up()
                restored += back
            finally:
                record.close(remove=whole)
    return restored


def recover_interrupted(folder) -> list[str]:
    """Under ``folder``'s lock, roll back the runs killed there between their renames (and remove dead runs'
    temporaries); returns the targets put back ([] when there was nothing to do, or the lock is busy)."""
    folder = os.path.abspath(os.fspath(folder))
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    if not any(_RECORD_RE.match(name) for name in names):
        return []
    try:
        with _locks([folder], 0):
            return remove_stale_temporaries(folder)
    except GssegError:
        return []


def _check_name_fits(target) -> None:
    """Refuse, before any work, an output whose name the file system cannot hold (e.g. a sidecar, whose name is
    its PLY's with .gsseg.npz for .ply): the long lift would otherwise end in "File name too long"."""
    folder = os.path.dirname(target)  # absolute (check_outputs resolves it): the walk up ends at the root
    while not os.path.isdir(folder):  # the nearest folder that exists says what the file system allows
        folder = os.path.dirname(folder)
    try:
        most = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        most = 255
    length = len(os.fsencode(os.path.basename(target)))
    if most and length > most:
        raise BadInputError(f"{target}: the file name is {length} bytes, longer than the file system allows "
                            f"({most}); choose a shorter output name")


def _resolved(target) -> str:
    """The path an output is written to: a symbolic link is followed (its target is written, the link stays),
    as ``cp`` and editors do."""
    target = os.path.abspath(os.fspath(target))
    return os.path.realpath(target) if os.path.islink(target) else target


def _identity(path):
    try:
        status = os.lstat(path)
    except OSError:
        return None
    return [status.st_dev, status.st_ino]


class _Record:
    """A run's record in a folder it writes in (see the module docstring): ``.gsseg-RUN.run``, JSON, locked
    with flock while the run lives."""

    def __init__(self, path, fd, data):
        self.path, self.fd, self.data = path, fd, data

    @classmethod
    def create(cls, folder, token):
        path = os.path.join(folder, f".gsseg-{token}.run")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            _lock_record(fd, blocking=True)  # a run sweeping meanwhile finds it empty: unproven, left alone
            record = cls(path, fd, {"written_by": "gsseg", "run": token, "pid": os.getpid(),
                                    "host": _hostname(), "phase": "writing", "temporaries": [], "renames": []})
            record.update()
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return record

    @classmethod
    def open_dead(cls, path):
        """The record at ``path`` when its run is dead (we then hold its lock) and it is one of ours; else None."""
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return None
        try:
            if not _lock_record(fd, blocking=False):
                stale = time.time() - os.fstat(fd).st_mtime > STALE_RECORD_S  # no locks here: an age rule
                if not stale:
                    os.close(fd)
                    return None
            with os.fdopen(os.dup(fd), "rb") as handle:
                data = json.loads(handle.read().decode("utf-8"))
            token = _RECORD_RE.match(os.path.basename(path)).group("token")
            if not (isinstance(data, dict) and data.get("written_by") == "gsseg" and data.get("run") == token
                    and isinstance(data.get("temporaries"), list) and isinstance(data.get("renames"), list)):
                raise ValueError("not a gsseg run record")
        except (OSError, ValueError):  # not one we can prove ours: left alone
            os.close(fd)
            return None
        return cls(path, fd, data)

    def update(self, **changes):
        self.data.update(changes)
        text = json.dumps(self.data).encode("utf-8")
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)  # (os.pwrite is not on Windows)
        os.write(self.fd, text)
        if changes.get("phase") in ("renaming", "landed"):
            os.fsync(self.fd)

    def close(self, remove):
        if self.fd is None:
            return
        if remove and sys.platform != "win32":  # removed while still locked: never seen unlocked
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = None
        if remove and sys.platform == "win32":  # Windows removes no open file
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def clean_up(self) -> tuple[list[str], bool]:
        """A dead run's leftovers: roll back its renames if it died between them, then remove its temporaries.
        Returns (the targets put back, whether all is done: the record may go). What cannot be proven ours, or
        put back, stays (and so does the record)."""
        folder = os.path.dirname(self.path)
        restored, whole = [], True
        if self.data.get("phase") == "renaming":
            for rename in reversed(self.data["renames"]):
                try:
                    restored += _roll_back(folder, rename)
                except (OSError, KeyError, TypeError, ValueError):
                    whole = False
        elif self.data.get("phase") == "landed":
            for rename in self.data["renames"]:
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    _remove(_own_path(folder, rename["backup"], self.data["run"]), rename["folder"])
        for temporary in self.data["temporaries"]:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                _remove(_own_path(folder, temporary["name"], self.data["run"]), temporary["folder"])
        return restored, whole


def _own_path(folder, name, token):
    """A file a record names, when it has the form of that run's temporaries (never anything else)."""
    if not (isinstance(name, str) and re.fullmatch(rf"\.gsseg-{token}-\d+\.(part|old)(\.[^/]*)?", name)):
        raise ValueError(name)
    return os.path.join(folder, name)


def _roll_back(folder, rename) -> list[str]:
    """Undo one rename of a run killed between its renames: what landed goes, what was kept aside comes back.
    Only a target that is still the very file or folder the run landed (same inode) is touched."""
    token = re.match(r"\.gsseg-([0-9a-f]{12})-", rename["temp"]).group(1)
    target = os.path.join(folder, os.path.basename(rename["target"]))
    backup = _own_path(folder, rename["backup"], token)
    is_folder = bool(rename["folder"])
    ours = _identity(target) == list(rename["new"])
    if ours:
        if is_folder:  # moved out of the way first: a folder is not renamed over a folder that holds files
            aside = _own_path(folder, rename["temp"], token)
            os.replace(target, aside)
            _remove(aside, True)
        elif not os.path.lexists(backup):
            os.unlink(target)  # there was nothing before
        if os.path.lexists(backup):
            os.replace(backup, target)
        return [target]
    if os.path.lexists(backup):
        if not os.path.lexists(target):  # a folder moved aside, its replacement not landed
            os.replace(backup, target)
            return [target]
        if not is_folder and _identity(target) == _identity(backup):  # the link of a file still in place
            os.unlink(backup)
            return []
        raise ValueError("the target changed since: the kept copy stays")
    return []


def _hostname():
    import socket

    with contextlib.suppress(OSError):
        return socket.gethostname()
    return ""


def _lock_record(fd, blocking) -> bool:
    """flock ``fd``: True when we hold it, False when another process does (or there are no locks here)."""
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)  # the lock covers the first byte
        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK if blocking else msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return False
        raise
    return True


def _stamp(path):
    """What changes when a file is replaced or rewritten: (inode, size, mtime)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


def _write_manifest(target, staging, kind, token):
    files = sorted(os.path.relpath(os.path.join(root, name), staging).replace(os.sep, "/")
                   for root, _dirs, names in os.walk(staging) for name in names)
    with _open(os.path.join(target, MANIFEST_NAME), os.path.join(staging, MANIFEST_NAME), "w") as handle:
        json.dump({"written_by": "gsseg", "kind": kind, "run": token, "files": files}, handle, indent=1)
        handle.write("\n")


def read_manifest(folder) -> dict | None:
    try:
        with open(os.path.join(folder, MANIFEST_NAME), encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("written_by") == "gsseg" else None


def _check_replaceable(target, kind, overwrite):
    if not os.path.isdir(target):
        raise BadInputError(f"{target}: exists and is not a folder")
    present = sorted(os.path.relpath(os.path.join(root, name), target).replace(os.sep, "/")
                     for root, dirs, names in os.walk(target) for name in names + dirs)  # links and folders too
    present = [p for p in present if p != LOCK_NAME]
    if not present:
        return
    manifest = read_manifest(target)
    if not overwrite:
        raise BadInputError(f"{target}: the folder holds files; choose a new or empty folder, or give "
                            f"--overwrite to replace a folder gsseg wrote")
    if manifest is None:
        raise BadInputError(f"{target}: holds files gsseg did not write (it has no {MANIFEST_NAME}); choose "
                            f"another folder")
    if manifest.get("kind") != kind:
        raise BadInputError(f"{target}: written by 'gsseg {manifest.get('kind')}', not by 'gsseg {kind}'")
    listed = set(manifest.get("files", []))
    folders = {posixpath.dirname(name) for name in listed}
    while {posixpath.dirname(f) for f in folders} - folders:  # and their parents, up to the top
        folders |= {posixpath.dirname(f) for f in folders}
    foreign = sorted(set(present) - listed - (folders - {""}) - {MANIFEST_NAME})
    if foreign:
        raise BadInputError(f"{target}: holds files gsseg did not write ({', '.join(foreign[:5])}"
                            f"{', ...' if len(foreign) > 5 else ''}); nothing was replaced")
