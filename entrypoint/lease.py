"""Lease: one downloader per cache, however many nodes share it, without file locks.

When several nodes mount one cache (a ReadWriteMany volume, a Slurm shared filesystem),
the first to create the lease file downloads; the others wait for it, log its progress,
and find the checkpoint complete when it is done. Nothing needs configuring: the nodes
meet at a file in the cache itself, and separate caches have separate leases.

It does not rely on ``flock``/``fcntl`` locks, which some NFS and Lustre mounts accept
and ignore (huggingface_hub ``file_download.py``, ``_download_to_tmp_and_move``, says the
same of them):

- Taking the lease is an exclusive create (``O_CREAT | O_EXCL``), atomic on local
  filesystems, NFSv3 and later, and Lustre. The file names its holder (host, process,
  a random token).
- The holder proves it is alive by touching the file (its mtime) every ``stale_s / 6``
  seconds, and checks on each beat that the file still names it.
- A waiter watches the file's (inode, mtime, content) change on its own clock, so the
  nodes' clocks need not agree. It takes the lease over when nothing changed for
  ``stale_s`` seconds (the holder or its node is gone), or when no byte reached the cache
  for ``no_progress_s`` (a holder that is alive but stuck). When the holder ran on this
  host in this PID namespace (the file records the boot id, the namespace, the process ID
  and its start time, from ``/proc``), a waiter sees at once that it is gone: a restart
  in the same container does not wait for its predecessor's lease to go stale. Takeover
  renames the stale file aside, so of several waiters exactly one removes it.
- A holder that finds the file no longer naming it has lost the lease (``lost``) and
  stops; even then no file is corrupted, since transfers write each byte at its offset
  and verify each file (``entrypoint.transfer``).

Waiting is bounded: by ``stale_s`` without a sign of life, by ``no_progress_s`` without
a new byte.
"""

from __future__ import annotations

import os
import stat

from .errors import WeightsError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# The lease lives with huggingface_hub's own lock files (``<cache>/.locks/<repo folder>/``).
LEASE_NAME = "longcat-deploy.download.lease"
# The most read of a lease file: its holder's JSON (host, process, token) is some 250 bytes.
LEASE_MAX_BYTES = 4096
# How often the waiting log says what the holder is doing.
WAIT_LOG_EVERY_S = 15.0


def lease_path(cache: str, repo_folder: str) -> str:
    """The lease of one repository of one cache: ``<cache>/.locks/<repo folder>/LEASE_NAME``."""
    return os.path.join(cache, ".locks", repo_folder, LEASE_NAME)


def _process_identity(pid: int) -> dict[str, str]:
    """What tells process ``pid`` apart on Linux: the boot id, the PID namespace, the PID and
    its start time in clock ticks since boot (proc(5): ``/proc/sys/kernel/random/boot_id``,
    ``/proc/self/ns/pid``, field 22 of ``/proc/<pid>/stat``). Empty values where ``/proc``
    does not tell (another system, or no such process)."""
    found = {"pid": str(pid), "boot": "", "pidns": "", "start": ""}
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            found["boot"] = f.read().strip()
        found["pidns"] = os.readlink("/proc/self/ns/pid")
        with open("/proc/self/stat" if pid == os.getpid() else f"/proc/{pid}/stat") as f:
            # The command name (field 2) is in parentheses and may hold spaces.
            found["start"] = f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        pass
    return found


class LeaseLost(Exception):
    """The lease file no longer names this process: another node took it over."""


class Lease:
    """The right to download into one repository folder of a cache.

    Args:
        path: the lease file (``lease_path``).
        stale_s: seconds without a heartbeat after which a holder counts as gone.
        no_progress_s: seconds without a new byte (``progress()``) after which a live
            holder counts as stuck.
        log: where waiting lines go.
        progress: the bytes in the cache so far, and a short text about them; the waiter
            logs the text and watches the number.
        clock, sleep: for tests (``time.monotonic``, ``time.sleep``).

    Attributes:
        lost (threading.Event): set by the heartbeat when another process took the lease.
        holder (str): who holds it, in words (after ``acquire``: this process).

    Raises (``acquire``):
        WeightsError: something else than a regular file stands at ``path`` or its folder.
        OSError: the lease folder cannot be created or written (read-only, permissions).
    """

    def __init__(
        self,
        path: str,
        stale_s: float,
        no_progress_s: float,
        log: Callable[[str], None],
        progress: Callable[[], tuple[int, str]] = lambda: (0, ""),
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        import socket
        import threading
        import time
        import uuid

        self.path, self.stale_s, self.no_progress_s = path, stale_s, no_progress_s
        self.log, self.progress = log, progress
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.token = uuid.uuid4().hex
        self.me = f"{socket.gethostname()} (pid {os.getpid()})"
        self.identity = _process_identity(os.getpid())
        self.holder = ""
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.beat_s = min(10.0, max(0.1, stale_s / 6))

    # --- holding --------------------------------------------------------------------

    def _create(self) -> bool:
        """Try the exclusive create; True when this process now holds the lease."""
        import json

        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
        except FileExistsError:  # something else than a folder stands there
            raise self._not_a_file(folder, os.lstat(folder).st_mode) from None
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(
                fd, json.dumps({"holder": self.me, "token": self.token, **self.identity}).encode()
            )
        finally:
            os.close(fd)
        return True

    def _heartbeat(self) -> None:
        from .transfer import NotAFile

        while not self._stop.wait(self.beat_s):
            try:
                content = self._read()[1]
            except (NotAFile, OSError):  # replaced or unreadable: not ours any more
                content = ""
            if self.token not in content:
                self.lost.set()
                return
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self, join: bool = True) -> None:
        """Stop the heartbeat and remove the lease file if it still names this process.

        ``join=False`` does not wait for the heartbeat thread (from a signal handler).
        """
        self._stop.set()
        if join and self._beat is not None and self._beat.is_alive():
            self._beat.join(self.beat_s + 1)
        from .transfer import NotAFile

        try:
            ours = self.holder == self.me and self.token in self._read()[1]
        except (NotAFile, OSError):
            ours = False
        if ours:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        self.holder = ""

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # --- waiting --------------------------------------------------------------------

    def _read(self) -> tuple[tuple[int, int] | None, str]:
        """((inode, mtime in ns), content) of the lease file, or (None, "") if absent.

        Opened rather than stat'ed: on NFS, an open revalidates the cached attributes
        (close-to-open consistency), so a heartbeat shows within one poll. Read only if it
        is a regular file, not through a link, at most ``LEASE_MAX_BYTES``
        (``transfer.read_small_file``): a FIFO there would block the open, a directory
        would never open, and ``/dev/zero`` would never end.

        Raises:
            NotAFile: something else than a regular file is there (``_create`` never
                makes one: ``O_EXCL`` creates a regular file and follows no link).
            OSError: it cannot be read (permissions, I/O).
        """
        from .transfer import read_small_file

        found = read_small_file(self.path, LEASE_MAX_BYTES, follow_links=False)
        if found is None:
            return None, ""
        st, content = found
        return (st.st_ino, st.st_mtime_ns), content.decode("utf-8", "replace")

    def _not_a_file(self, path: str, mode: int) -> WeightsError:
        """The refusal for ``path`` (the lease file, or its folder) being ``mode``."""
        from .transfer import file_kind

        what = (
            f"the download lease {path} is {file_kind(mode)}, not the file the launcher "
            "keeps there while a node downloads into this cache"
            if path == self.path
            else f"{path}, the folder of the download lease {self.path}, is "
            f"{file_kind(mode)}, not a folder"
        )
        remove = "rm -r" if stat.S_ISDIR(mode) else "rm"
        return WeightsError(
            f"{what}; no launcher can take the lease while it is there. Remove it "
            f"({remove} {path}), then start again."
        )

    def _gone(self, content: str) -> bool:
        """True when the holder ran in this PID namespace of this boot and is not running
        any more (its PID is free, or taken by a process started at another time)."""
        import json

        try:
            theirs = json.loads(content)
            pid = int(theirs["pid"])
        except (ValueError, KeyError, TypeError):
            return False
        mine = self.identity
        if not mine.get("boot") or any(
            theirs.get(key) != mine.get(key) for key in ("boot", "pidns")
        ):
            return False
        return bool(_process_identity(pid).get("start") != theirs.get("start"))

    @staticmethod
    def _holder_of(content: str) -> str:
        import json

        try:
            return str(json.loads(content)["holder"])
        except (ValueError, KeyError, TypeError):
            return "another process"

    def _take_over(self, stale: tuple[int, int]) -> None:
        """Remove the stale lease file seen as ``stale``, unless it changed meanwhile."""
        aside = f"{self.path}.{self.token}.stale"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            if os.stat(aside).st_ino != stale[0]:  # a fresh lease replaced it: put it back
                try:
                    os.link(aside, self.path)
                except FileExistsError:
                    pass
        finally:
            try:
                os.unlink(aside)
            except OSError:
                pass

    def acquire(self) -> None:
        """Hold the lease: at once if it is free, else after its holder finished or died.

        While waiting, logs who holds it and ``progress()`` every ``WAIT_LOG_EVERY_S``.

        Raises:
            WeightsError: something else than a regular file (a directory, a FIFO, a
                device, a link) stands where the lease file or its folder belongs; raised
                at once, naming the path and what it is.
            OSError: the lease cannot be created or read (read-only cache, permissions).
        """
        import threading

        from .transfer import NotAFile

        self.lost.clear()
        self._stop.clear()
        seen, changed_at = None, self.clock()
        bytes_seen, bytes_at = self.progress()[0], self.clock()
        logged_at = None
        poll_s = min(2.0, max(0.05, self.stale_s / 10))
        absent_twice = False
        while not self._create():
            now = self.clock()
            try:
                signature, content = self._read()
            except NotAFile as error:
                raise self._not_a_file(error.path, error.mode) from None
            if signature is None:  # released between our create and our read: retry,
                if absent_twice:  # at once, unless it happens again
                    self.sleep(poll_s)
                absent_twice = True
                continue
            absent_twice = False
            holder = self._holder_of(content)
            if signature != seen:
                seen, changed_at = signature, now
            done, text = self.progress()
            if done != bytes_seen:
                bytes_seen, bytes_at = done, now
            if logged_at is None or now - logged_at >= WAIT_LOG_EVERY_S:
                logged_at = now
                self.log(
                    f"weights: waiting for {holder}, which is downloading into this "
                    f"shared cache{': ' + text if text else ''}"
                )
            why = None
            if self._gone(content):
                why = f"{holder} is not running any more"
            elif now - changed_at >= self.stale_s:
                why = (
                    f"{holder} stopped renewing its lease {self.path} for "
                    f"{self.stale_s:g} s (its process or node is gone)"
                )
            elif now - bytes_at >= self.no_progress_s:
                why = f"no new byte reached the cache for {self.no_progress_s:g} s"
            if why:
                self.log(f"weights: {why}; taking the download over")
                self._take_over(signature)
                seen, changed_at, bytes_at = None, now, now
                continue
            self.sleep(poll_s)
        self.holder = self.me
        self._beat = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
        self._beat.start()
