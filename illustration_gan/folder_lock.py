"""One writer per folder: a lock file that a second writer finds, and that a dead writer cannot leave held.

    with folder_lock.hold(run_dir, "training"):
        ...  # only this process writes into run_dir

    @folder_lock.locking("output_dir", "generate")  # the same around each call of a function
    def write_images(sampler, count, output_dir, ...): ...

The lock is `<folder>/.illustration-gan.lock`, held with `fcntl.flock(LOCK_EX | LOCK_NB)` on the
open file for the duration of the block. The kernel drops a flock when its file is closed (flock(2):
"released ... when all file descriptors ... have been closed"), so when the holder dies (even by
kill -9) the lock is free again: a "stale" lock is simply one that flock grants. The
holder writes its PID, host, command and start time into the file, for the message a second
writer gets (a `FolderLocked`, one line) and for the warning of a process that takes over the
lock of a dead one. On release the file is removed (while still locked); since a process may have
opened the old file just before, a lock is held only once flock is granted on the file that the
path still names (the usual flock-and-unlink protocol; flock(2) itself is silent on removal).

This module uses the standard library only: `data_tools` (which never imports TensorFlow) uses it
as well as the trainer and the generator. Where flock is missing (Windows) or refused by the file
system (some network mounts), the block runs unlocked after a warning.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import json
import os
import socket
import sys
import time

from illustration_gan import UserError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".illustration-gan.lock"  # a name no other tool uses: a folder's own files are never touched


class FolderLocked(UserError):
    """Another live process holds the folder's lock; the message names it."""

    def __init__(self, message: str, holder: dict):
        super().__init__(message)
        self.holder = holder


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def hold(folder: str, what: str = "writer", warn=_warn):
    """Holds the lock of `folder` (created if missing) for the block; raises FolderLocked if a
    live process holds it. `what` names this writer in messages ("training", "crop_faces")."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"{folder} exists and is not a folder")
    created = not os.path.isdir(folder)
    path = os.path.join(folder, LOCK_FILE)
    handle = _acquire(path, folder, warn)
    try:
        if handle is not None:
            _record(handle, what, folder, warn)
        yield path
    finally:
        if handle is not None:
            with contextlib.suppress(OSError):
                os.remove(path)
            handle.close()  # releases the flock
        if created:  # leave no empty folder behind a run that wrote nothing
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def locking(folder_arg: str, what: str, when=None):
    """Decorates a function so that it runs holding the lock of its argument `folder_arg`, or
    unlocked when `when(arguments by name)` is false (a worker that does not write the folder)."""

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            given = bound.arguments
            if when is not None and not when(given):
                return fn(*args, **kwargs)
            with hold(given[folder_arg], what):
                return fn(*args, **kwargs)

        return locked

    return decorate


def holder(folder: str) -> dict:
    """What the lock file of `folder` says about its holder ({} if nothing readable)."""
    try:
        with open(os.path.join(folder, LOCK_FILE), encoding="utf-8") as f:
            return _parse(f.read())
    except OSError:
        return {}


def _parse(text: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _acquire(path: str, folder: str, warn):
    """The open, flocked lock file, or None when this file system cannot lock."""
    if fcntl is None:
        warn(f"cannot lock {folder} on this system: make sure no other process writes into it")
        return None
    while True:
        try:
            os.makedirs(folder, exist_ok=True)  # again: a holder that made it may have removed it
            handle = open(path, "a+", encoding="utf-8")
        except OSError as error:
            raise UserError(f"cannot write into {folder}: {error.strerror or error}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.close()
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise FolderLocked(_held_message(folder), holder(folder)) from None
            warn(f"cannot lock {folder} ({error.strerror}): make sure no other process writes into it")
            return None
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return handle
        handle.close()  # the holder removed this file as we opened it: lock the path's new file


def _record(handle, what: str, folder: str, warn) -> None:
    """Takes over (saying so) what a dead holder left, and writes this process in."""
    handle.seek(0)
    left = handle.read()
    if left.strip():
        dead = _parse(left)
        warn(f"taking over the lock of {folder} left by {_describe(dead) if dead else 'a process'}, "
             "which is no longer running")
    me = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
          "command": " ".join(sys.argv).replace("\n", " "), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(me) + "\n")
        handle.flush()
    except OSError:  # a full disk: the lock holds all the same, only the message loses the PID
        with contextlib.suppress(OSError):
            handle.truncate(0)


def _describe(info: dict) -> str:
    command = info.get("command", "")
    command = command if len(command) <= 120 else command[:117] + "..."
    return (f"{info.get('what', 'a process')} PID {info.get('pid', '?')} on {info.get('host', '?')} "
            f"(since {info.get('started', '?')}: {command})")


def _held_message(folder: str) -> str:
    info = holder(folder)
    who = _describe(info) if info else "another process (it has not recorded its PID yet)"
    pid = f" (kill {info['pid']})" if info.get("pid") else ""
    return f"{folder} is in use by {who}; wait for it to finish or stop it{pid}, then run this again"
