"""Transfer: checkpoint files from the Hub into the Hugging Face cache, resumable and watched.

The launcher moves the bytes itself, on huggingface_hub's HTTP client, and leaves the rest
to huggingface_hub: the file list with sizes and hashes (``HfApi.model_info``), the URLs
(``hf_hub_url``), the headers with the token (``build_hf_headers``), the client with its
proxy and certificate settings (``get_session``), and the errors for each HTTP refusal
(``hf_raise_for_status``). It does so because the releases the engines' images ship
cannot resume across restarts nor bound a silent transfer (docs/engines.md,
"huggingface_hub"): each ``hf_hub_download`` writes to a file name of its own and deletes
it on failure, and its client has no timeout.

Files land in huggingface_hub's cache layout (huggingface_hub ``file_download.py``,
``_hf_hub_download_to_cache_dir``), so huggingface_hub and the engines read them as their
own::

    <cache>/models--org--name/blobs/<etag>               a file, named by its etag
    <cache>/models--org--name/blobs/<etag>.incomplete    the bytes fetched so far
    <cache>/models--org--name/snapshots/<commit>/<path>  -> ../../blobs/<etag>
    <cache>/models--org--name/refs/<revision>            the commit a branch or tag names

- **Resume.** The partial file has one name per blob, so a later attempt, or a later
  start after a kill, asks only for the missing bytes (``Range: bytes=N-``). Bytes are
  written at their offset (never appended), so two writers of one blob, which the lease
  (``entrypoint.lease``) normally prevents, write the same bytes in the same places.
- **Verified.** Every byte is hashed as it arrives (and the partial's bytes first): the
  sha256 the Hub publishes for LFS files, the git blob id for the others. Only a file
  that matches is renamed to its blob name; a mismatch is deleted and fetched again.
- **Bounded.** Every request has a timeout: a connection or a read that sees no byte for
  ``stall_s`` seconds raises ``Stalled``. A file is given up after ``DOWNLOAD_ATTEMPTS``
  failed attempts in a row that added no byte.

- **Contained.** Every name the Hub gives that becomes a path (the commit, each file's
  name, each blob's hash) is checked before anything is written (``UnsafeName``), so a
  mirror or a proxy at ``HF_ENDPOINT`` cannot make the launcher write outside the cache.

Errors: ``Refused`` (an HTTP refusal: never retried), ``GaveUp`` (the attempts ran out),
``LocalWriteError`` (the cache cannot be written: read-only, permissions, disk full),
``Aborted`` (another thread asked to stop). Before a transfer: ``UnsafeName`` and
``UnreadableListing`` (``ValueError``s), for the Hub's file list. The caller turns them
into messages.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any, Protocol

    class _Hasher(Protocol):
        def update(self, data: bytes, /) -> None: ...
        def hexdigest(self) -> str: ...


PARTIAL_SUFFIX = ".incomplete"
# Files fetched at once: snapshot_download's default (huggingface_hub _snapshot_download.py,
# max_workers=8).
PARALLEL_FILES = 8
# How much is read from the network (and hashed) at a time.
CHUNK_BYTES = 2**20
# Failed attempts in a row, without a new byte, before a file is given up.
DOWNLOAD_ATTEMPTS = 3
# The pause between two attempts of one file.
RETRY_PAUSE_S = 1.0
# Errors of the local filesystem that no retry can fix.
_LOCAL_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}


class RemoteFile:
    """One file of a repository at a commit, as ``HfApi.model_info(files_metadata=True)``
    lists it.

    Attributes:
        name (str): its path in the repository (``model-00001-of-00075.safetensors``).
        size (int): bytes.
        etag (str): its blob name in the cache: the LFS sha256 for LFS files, else the git
            blob id. huggingface_hub names blobs by the ETag the Hub sends for the file,
            which is exactly that (``file_download.py``, ``_xet_file_metadata_from_tree_cache``:
            "ETag/size come from the LFS metadata for LFS-tracked files").
        sha256 (str | None): the content's sha256, for LFS files.
        blob_id (str | None): the git blob id (sha1 of ``b"blob <size>\\0" + content``),
            which hashes the content for files stored in git, not for LFS files.
    """

    __slots__ = ("name", "size", "etag", "sha256", "blob_id")

    def __init__(self, name: str, size: int, sha256: str | None, blob_id: str | None):
        """Raises:
        UnsafeName: ``name`` is not a path inside a snapshot folder (``check_file_name``),
            or the hash that names the blob is not lowercase hex of its length: 64 digits
            for ``sha256``, else 40 for ``blob_id``.
        UnreadableListing: neither hash is given.
        """
        check_file_name(name)
        if sha256 is not None:
            etag = check_hex(sha256, SHA256_DIGITS, f"the LFS sha256 {_shown(sha256)} of {name!r}")
        elif blob_id is not None:
            etag = check_hex(
                blob_id, GIT_OBJECT_DIGITS, f"the blobId {_shown(blob_id)} of {name!r}"
            )
        else:
            raise UnreadableListing(f"{name!r} has neither an LFS 'sha256' nor a 'blobId'")
        self.name, self.size, self.etag = name, size, etag
        self.sha256, self.blob_id = sha256, blob_id

    @classmethod
    def from_sibling(cls, sibling: Any) -> RemoteFile:
        """From a ``huggingface_hub.hf_api.RepoSibling`` with files metadata.

        Raises:
            UnreadableListing: the sibling has no name as text, no size in bytes, an
                ``lfs`` entry without its sha256, or neither hash.
            UnsafeName: as the constructor.
        """
        name = sibling.rfilename
        if not isinstance(name, str):
            raise UnreadableListing(f"the 'rfilename' {_shown(name)} is not text")
        lfs = getattr(sibling, "lfs", None)
        sha256 = lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)
        if lfs is not None and sha256 is None:
            raise UnreadableListing(f"the 'lfs' entry of {name!r} has no 'sha256'")
        size = (
            sibling.size
            if sibling.size is not None
            else (lfs.get("size") if isinstance(lfs, dict) else getattr(lfs, "size", None))
        )
        if size is None:
            raise UnreadableListing(f"it gives no 'size' of {name!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise UnreadableListing(f"the 'size' of {name!r} is not a number of bytes")
        return cls(name, size, sha256, getattr(sibling, "blob_id", None))

    def hasher(self) -> _Hasher:
        """A new hash of the content, as the Hub's metadata states it."""
        import hashlib

        if self.sha256:
            return hashlib.sha256()
        hasher = hashlib.sha1(usedforsecurity=False)
        hasher.update(b"blob %d\0" % self.size)  # git's object header
        return hasher

    def expected(self) -> tuple[str, str]:
        """(what the hash is, its hex value): ``("sha256", ...)`` or ``("git blob id", ...)``."""
        return ("sha256", self.sha256) if self.sha256 else ("git blob id", str(self.blob_id))

    def __repr__(self) -> str:
        return f"RemoteFile({self.name!r}, {self.size}, etag={self.etag!r})"


class TransferError(Exception):
    """Root of this module's errors; ``str()`` is a sentence about one file."""


class Stalled(TransferError):
    """No byte arrived for ``stall_s`` seconds (connection, headers or body)."""


class Interrupted(TransferError):
    """The transfer ended early: a cut connection, a 5xx, a short body."""


class Corrupt(TransferError):
    """The bytes do not match the Hub's size or hash; the partial file was deleted."""


class Refused(TransferError):
    """The Hub refused the file (an HTTP 4xx other than 408 and 429); never retried.

    Attributes:
        error: huggingface_hub's exception (``HfHubHTTPError`` or a subclass).
        status: the HTTP status, or ``None``.
    """

    def __init__(self, message: str, error: Exception, status: int | None):
        super().__init__(message)
        self.error, self.status = error, status


class GaveUp(TransferError):
    """``DOWNLOAD_ATTEMPTS`` attempts in a row failed without a new byte.

    Attributes:
        remote: the file. last: the last attempt's error. stalled: every attempt stalled.
    """

    def __init__(self, remote: RemoteFile, last: TransferError, stalled: bool):
        super().__init__(str(last))
        self.remote, self.last, self.stalled = remote, last, stalled


class LocalWriteError(TransferError):
    """The cache cannot be written (``error.errno``: read-only, permissions, disk full).

    Attributes:
        error: the ``OSError``. path: what was written.
    """

    def __init__(self, error: OSError, path: str):
        super().__init__(f"{path}: {error.strerror or error}")
        self.error, self.path = error, path


class Aborted(TransferError):
    """Another thread asked every transfer to stop (a fatal error elsewhere, a lost lease)."""


# --- names from the Hub, checked before they become paths ------------------------------
#
# The real Hub sends a commit id, git paths and hashes; a mirror or a proxy at HF_ENDPOINT
# can send anything. huggingface_hub refuses a file name that would leave the folder it is
# written to (``_local_folder.py``, ``_validate_relative_filename``, which
# ``file_download.py`` applies before every download to the cache), and a snapshot entry
# outside the snapshots folder (``file_download.py``, ``_get_pointer_path``). It does not
# check the form of the commit id, nor the blob names (the ETags) the server gives
# (``_hf_hub_download_to_cache_dir`` joins ``blobs`` and the ETag as they come); the
# launcher checks all three, as huggingface_hub's own patterns describe them.

# A commit id: 40 lowercase hex digits (huggingface_hub file_download.py,
# REGEX_COMMIT_HASH, which huggingface_hub uses to tell a commit from a branch or tag).
COMMIT_DIGITS = 40
# An LFS file's sha256, its blob name: 64 lowercase hex digits (file_download.py,
# REGEX_SHA256).
SHA256_DIGITS = 64
# A git object id, the blob name of a file stored in git: its sha1, 40 lowercase hex digits
# like a commit id (the ETag the Hub sends for the file; file_download.py, _normalize_etag).
GIT_OBJECT_DIGITS = 40
_HEX = frozenset("0123456789abcdef")


class UnsafeName(ValueError):
    """A name the Hub gave that will not become a path in the cache: it would lead outside
    the folder it belongs in, or is not the kind of name huggingface_hub gives that path.
    ``str()`` says which value (shortened) and what is wrong with it."""


class UnreadableListing(ValueError):
    """The Hub's file list lacks something the transfer needs, or holds it as the wrong
    type. ``str()`` says what."""


def _shown(value: object) -> str:
    """``value`` for a message: quoted, redacted, at most ``SHOWN_VALUE_CHARS`` characters
    (a server chooses it, and its length)."""
    from .errors import SHOWN_VALUE_CHARS, shorten
    from .output import redact

    if isinstance(value, str):
        return shorten(value)
    return redact(repr(value))[:SHOWN_VALUE_CHARS]  # redacted before the cut, as shorten


def check_hex(value: object, digits: int, what: str) -> str:
    """``value`` when it is ``digits`` lowercase hex digits.

    Raises:
        UnsafeName: ``"{what}: not {digits} lowercase hex digits"``.
    """
    if isinstance(value, str) and len(value) == digits and _HEX.issuperset(value):
        return value
    raise UnsafeName(f"{what}: not {digits} lowercase hex digits")


def check_commit(commit: object) -> str:
    """``commit`` when it is a commit id (``COMMIT_DIGITS`` lowercase hex digits): the name
    of its snapshot folder, and what a ref file holds.

    Raises:
        UnsafeName: it is not one (``"../.."``, an absolute path, upper case, too short).
    """
    return check_hex(commit, COMMIT_DIGITS, f"the commit {_shown(commit)}")


def check_file_name(name: str) -> str:
    """``name`` when it is a relative path that stays inside a snapshot folder.

    huggingface_hub's rules (``_local_folder.py``, ``_validate_relative_filename``): no
    ``..`` segment, with ``/`` or ``\\`` as the separator; not absolute. Stricter, for names
    no checkpoint needs: no backslash at all (a separator where the cache is read on
    Windows), no NUL (no path can hold one), no empty or ``.`` segment (two names would be
    one file). ``pointer_path`` then checks where the joined path leads, as
    ``file_download.py``, ``_get_pointer_path``, does.

    Raises:
        UnsafeName: naming the rule broken.
    """
    why = None
    if "\0" in name:
        why = "it holds a NUL character"
    elif ".." in name.replace("\\", "/").split("/"):
        why = "it has a '..' segment"
    elif name.startswith("/"):
        why = "it is an absolute path"
    elif "\\" in name:
        why = "it holds a backslash"
    elif any(part in ("", ".") for part in name.split("/")):
        why = "it has an empty or '.' segment"
    if why:
        raise UnsafeName(f"the file name {_shown(name)}: {why}")
    return name


# --- the cache layout -------------------------------------------------------------------


def blob_path(folder: str, etag: str) -> str:
    """``<folder>/blobs/<etag>``: where a complete file lives."""
    return os.path.join(folder, "blobs", etag)


def partial_path(folder: str, etag: str) -> str:
    """``<folder>/blobs/<etag>.incomplete``: the bytes fetched so far."""
    return blob_path(folder, etag) + PARTIAL_SUFFIX


def pointer_path(folder: str, commit: str, name: str) -> str:
    """``<folder>/snapshots/<commit>/<name>``: the path the engine opens.

    Raises:
        UnsafeName: that path is not inside ``<folder>/snapshots/<commit>`` (as
            huggingface_hub ``file_download.py``, ``_get_pointer_path``, checks; without
            resolving links), or ``commit`` is not a commit id (``check_commit``).
    """
    check_commit(commit)
    snapshot = os.path.abspath(os.path.join(folder, "snapshots", commit))
    pointer = os.path.abspath(os.path.join(snapshot, *check_file_name(name).split("/")))
    if not pointer.startswith(snapshot + os.sep):
        raise UnsafeName(f"the file name {_shown(name)}: it leads outside {snapshot}")
    return os.path.join(folder, "snapshots", commit, *name.split("/"))


# What a path can be instead of a regular file, in words (the stat module's S_IS* tests,
# inode(7) "The file type and mode").
_FILE_KINDS = (
    ("S_ISLNK", "a symbolic link"),
    ("S_ISDIR", "a directory"),
    ("S_ISFIFO", "a FIFO (named pipe)"),
    ("S_ISSOCK", "a socket"),
    ("S_ISCHR", "a character device"),
    ("S_ISBLK", "a block device"),
)
# The most read of a ref: it holds a commit id, 40 hex digits (huggingface_hub
# file_download.py, _cache_commit_hash_for_specific_revision, writes just that).
REF_MAX_BYTES = 1024


def file_kind(mode: int) -> str:
    """What a ``st_mode`` says a path is, in words: ``"a regular file"``, ``"a directory"``,
    ``"a FIFO (named pipe)"``, ``"a character device"``..."""
    import stat

    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _FILE_KINDS if getattr(stat, test)(mode)), "not a file")


class NotAFile(TransferError):
    """Something other than a regular file stands where the cache keeps one (a ref, the
    download lease): a directory, a FIFO, a device, a socket, or, where links are not
    followed, a symbolic link. ``str()``: ``"<path> is <kind>"``, then ``fix`` when given.

    Attributes:
        path (str): the path. mode (int): its ``st_mode``. kind (str): what it is, in words
            (``file_kind``).
    """

    def __init__(self, path: str, mode: int, fix: str = ""):
        self.path, self.mode, self.kind = path, mode, file_kind(mode)
        super().__init__(f"{path} is {self.kind}{'; ' + fix if fix else ''}")


def read_small_file(
    path: str, limit: int, follow_links: bool = True
) -> tuple[os.stat_result, bytes] | None:
    """``(fstat of the open file, its first bytes, at most limit)`` of the regular file
    ``path``; ``None`` when there is none (a dangling link, when links are followed).

    Never blocks and never reads without end, whatever stands at ``path``: ``open()``
    waits for a writer on a FIFO, and a device such as ``/dev/zero`` never ends. The path is
    stat'ed first (a device or FIFO is not even opened), then opened with ``O_NONBLOCK`` (a
    FIFO put there meanwhile opens at once, ``fifo(7)``) and checked again with ``fstat`` on
    what was opened; at most ``limit`` bytes are read. ``follow_links=False`` refuses a
    symbolic link (``O_NOFOLLOW``) instead of reading what it points at.

    Raises:
        NotAFile: ``path`` is something else than a regular file (``file_kind``).
        OSError: it cannot be opened or read (permissions, I/O).
    """
    import stat

    try:
        mode = (os.stat if follow_links else os.lstat)(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags if follow_links else flags | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno != errno.ELOOP or follow_links:
                raise
            mode = stat.S_IFLNK  # replaced by a link since the lstat
        else:
            try:
                found = os.fstat(fd)
                mode = found.st_mode
                if stat.S_ISREG(mode):
                    chunks: list[bytes] = []
                    size = 0
                    while size < limit:
                        chunk = os.read(fd, limit - size)
                        if not chunk:
                            break
                        chunks.append(chunk)
                        size += len(chunk)
                    return found, b"".join(chunks)
            finally:
                os.close(fd)
    raise NotAFile(path, mode)


def file_size(path: str) -> int:
    """The size of ``path`` in bytes, 0 when it does not exist."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def bytes_still_needed(folder: str, remotes: Iterable[RemoteFile]) -> int:
    """Bytes left to fetch for ``remotes``: what their partial files and blobs lack.

    A blob already present (another commit shares it) needs nothing; a partial file
    counts for what it holds, so a resumed download needs only the rest.
    """
    need = 0
    for remote in remotes:
        if os.path.isfile(blob_path(folder, remote.etag)):
            continue
        have = file_size(partial_path(folder, remote.etag))
        need += remote.size - have if have <= remote.size else remote.size
    return need


def link(folder: str, commit: str, remote: RemoteFile) -> str:
    """Point the snapshot entry of ``remote`` at its blob; return the snapshot path.

    A relative symlink, as huggingface_hub makes (``file_download.py``, ``_create_symlink``);
    where the filesystem has no symlinks, the blob is moved there instead, as
    huggingface_hub does for a new blob.

    Raises:
        LocalWriteError: the snapshot folder cannot be written.
    """
    blob, pointer = blob_path(folder, remote.etag), pointer_path(folder, commit, remote.name)
    if os.path.isfile(pointer):
        return pointer
    try:
        if os.path.islink(pointer):  # a link to a blob that is gone
            os.unlink(pointer)
        os.makedirs(os.path.dirname(pointer), exist_ok=True)
        try:
            os.symlink(os.path.relpath(blob, os.path.dirname(pointer)), pointer)
        except FileExistsError:
            pass
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            os.replace(blob, pointer)
    except OSError as error:
        raise LocalWriteError(error, pointer) from None
    return pointer


def write_ref(folder: str, revision: str, commit: str) -> None:
    """Record that ``revision`` (a branch or tag) is ``commit``: ``refs/<revision>``, as
    huggingface_hub does (``file_download.py``, ``_cache_commit_hash_for_specific_revision``).

    The ref in place is read (``read_small_file``: never blocking, at most
    ``REF_MAX_BYTES``) only to leave it untouched when it already says so. A FIFO, device,
    socket or link to one there holds no ref: it is replaced (the new file is renamed over
    the name, so nothing is opened through it), as its content is what the Hub just said.
    A directory cannot be replaced that way, and may hold someone's files: refused.

    Raises:
        NotAFile: a directory stands at ``refs/<revision>``.
        LocalWriteError: the refs folder cannot be written.
    """
    if revision == commit:
        return
    ref = os.path.join(folder, "refs", *revision.split("/"))
    try:
        found = read_small_file(ref, REF_MAX_BYTES)
        if found is not None and found[1] == commit.encode():
            return
    except NotAFile as error:
        import stat

        if stat.S_ISDIR(error.mode):
            raise NotAFile(
                ref,
                error.mode,
                "huggingface_hub keeps the commit of that branch or tag in a file there. "
                f"Remove the directory (rm -r {ref}), then start again.",
            ) from None
    except OSError:
        pass
    try:
        os.makedirs(os.path.dirname(ref), exist_ok=True)
        temporary = f"{ref}.{os.getpid()}.tmp"
        with open(temporary, "w") as f:
            f.write(commit)
        os.replace(temporary, ref)
    except OSError as error:
        raise LocalWriteError(error, ref) from None


def remove_leftovers(folder: str, etags: Iterable[str], older_than_s: float) -> list[str]:
    """Delete partial files of blobs that are now complete; return what was deleted.

    Our own ``<etag>.incomplete`` is renamed, not left; this removes the ones other
    writers left for the same blobs (huggingface_hub's ``<etag>.<8 hex>.incomplete`` of a
    killed start, which it never resumes), once untouched for ``older_than_s`` seconds
    (a live writer keeps touching its file).
    """
    import time

    blobs = os.path.join(folder, "blobs")
    done = {etag for etag in etags if os.path.isfile(os.path.join(blobs, etag))}
    removed: list[str] = []
    try:
        names = os.listdir(blobs)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        if not name.endswith(PARTIAL_SUFFIX) or name.split(".", 1)[0] not in done:
            continue
        path = os.path.join(blobs, name)
        try:
            if now - os.stat(path).st_mtime >= older_than_s:
                os.unlink(path)
                removed.append(path)
        except OSError:
            pass
    return removed


# --- one file ---------------------------------------------------------------------------


class Source:
    """Where and how to fetch: the HTTP client, the headers, and a URL per file.

    Args:
        session: huggingface_hub's client (``huggingface_hub.get_session()``: an httpx
            client, httpx2 in huggingface_hub 2.x).
        httpx: its module (``huggingface_hub.utils.httpx``), for its exception classes.
        url: ``name -> URL`` of the file at the commit (``huggingface_hub.hf_hub_url``).
        headers: the request headers (``build_hf_headers``: token, user agent).
        raise_for_status: ``huggingface_hub.utils.hf_raise_for_status``.
        hub_error: the class it raises, ``huggingface_hub.errors.HfHubHTTPError``.
        stall_s: seconds without a byte before a request is given up.
    """

    def __init__(
        self,
        session: Any,
        httpx: Any,
        url: Callable[[str], str],
        headers: Mapping[str, str],
        raise_for_status: Callable[[Any], None],
        hub_error: type[Exception],
        stall_s: float,
    ):
        self.session, self.httpx, self.url = session, httpx, url
        self.hub_error = hub_error
        # Identity encoding: a compressed body would make byte offsets, and so ranges,
        # meaningless (huggingface_hub file_download.py, http_get, notes the same).
        self.headers = {**headers, "Accept-Encoding": "identity"}
        self.raise_for_status, self.stall_s = raise_for_status, stall_s


def _hash_existing(fd: int, size: int, hasher: _Hasher) -> None:
    offset = 0
    while offset < size:
        data = os.pread(fd, min(CHUNK_BYTES * 8, size - offset), offset)
        if not data:
            raise OSError(errno.EIO, "the partial file shrank while it was read")
        hasher.update(data)
        offset += len(data)


def _status_of(error: Exception) -> int | None:
    status = getattr(getattr(error, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def attempt(
    source: Source,
    folder: str,
    remote: RemoteFile,
    abort: threading.Event,
    received: Callable[[int], None] = lambda n: None,
) -> bool:
    """One attempt at ``remote``: resume its partial file, verify it, rename it to its blob.

    Returns:
        True when this attempt checked the whole content against the Hub's hash; False
        when the blob was already there.

    Args:
        source: the client and URLs.
        folder: the repository's cache folder (``.../models--org--name``).
        remote: the file.
        abort: set by another thread to stop this attempt at the next chunk.
        received: called with the size of each chunk written.

    Raises:
        Stalled, Interrupted, Corrupt: worth another attempt.
        Refused: the Hub refuses the file. LocalWriteError: the cache cannot be written.
        Aborted: ``abort`` was set.
    """
    blob, partial = blob_path(folder, remote.etag), partial_path(folder, remote.etag)
    if os.path.isfile(blob):
        return False
    try:
        os.makedirs(os.path.dirname(partial), exist_ok=True)
        fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise LocalWriteError(error, partial) from None
    offset = 0
    try:
        start = os.fstat(fd).st_size
        hasher = remote.hasher()
        if start > remote.size:  # not this file's bytes: start over
            os.ftruncate(fd, 0)
            start = 0
        _hash_existing(fd, start, hasher)
        offset = start
        if start < remote.size:
            headers = dict(source.headers)
            if start:
                headers["Range"] = f"bytes={start}-"
            with source.session.stream(
                "GET",
                source.url(remote.name),
                headers=headers,
                timeout=source.stall_s,
                follow_redirects=True,
            ) as reply:
                source.raise_for_status(reply)
                if start and reply.status_code != 206:  # the server ignored the range
                    os.ftruncate(fd, 0)
                    offset, hasher = 0, remote.hasher()
                elif start and not reply.headers.get("Content-Range", "").startswith(
                    f"bytes {start}-"
                ):
                    raise Interrupted(
                        f"{remote.name}: the server answered another range "
                        f"({reply.headers.get('Content-Range')}) than bytes "
                        f"{start}-"
                    )
                for chunk in reply.iter_bytes(CHUNK_BYTES):
                    if abort.is_set():
                        raise Aborted(f"{remote.name}: stopped")
                    if offset + len(chunk) > remote.size:
                        os.ftruncate(fd, 0)
                        raise Corrupt(
                            f"{remote.name}: the Hub sent more than the "
                            f"{remote.size} bytes it lists"
                        )
                    os.pwrite(fd, chunk, offset)
                    hasher.update(chunk)
                    offset += len(chunk)
                    received(len(chunk))
        if offset < remote.size:
            raise Interrupted(
                f"{remote.name}: the transfer ended at byte {offset} of {remote.size}"
            )
        kind, value = remote.expected()
        if hasher.hexdigest() != value:
            os.ftruncate(fd, 0)
            raise Corrupt(f"{remote.name}: its {kind} does not match the Hub's; fetching it again")
        os.fsync(fd)
    except Exception as error:
        raise _classify(error, source, remote, partial, offset) from None
    finally:
        os.close(fd)
    try:
        os.rename(partial, blob)
    except FileNotFoundError:  # another writer renamed the same bytes first
        if not os.path.isfile(blob):
            raise Interrupted(f"{remote.name}: its partial file vanished") from None
    except OSError as error:
        raise LocalWriteError(error, blob) from None
    return True


def _classify(
    error: Exception, source: Source, remote: RemoteFile, partial: str, offset: int
) -> Exception:
    """The ``TransferError`` an exception of one attempt stands for (or itself, for a bug).

    huggingface_hub's ``HfHubHTTPError`` is both an ``httpx.HTTPError`` and an ``OSError``
    (``huggingface_hub/errors.py``), so it is told apart first, by its HTTP status.
    """
    if isinstance(error, TransferError):
        return error
    if isinstance(error, source.hub_error):
        status = _status_of(error)
        if status is None or status in (408, 429) or status >= 500:
            return Interrupted(f"{remote.name}: {_first_line(error)}")
        return Refused(f"{remote.name}: {_first_line(error)}", error, status)
    if isinstance(error, source.httpx.TimeoutException):
        return Stalled(
            f"{remote.name}: no byte for {source.stall_s:g} s at byte {offset} of {remote.size}"
        )
    if isinstance(error, source.httpx.HTTPError):  # refused, reset, cut connections
        return Interrupted(f"{remote.name}: {_first_line(error)}")
    if isinstance(error, OSError):
        if error.errno in _LOCAL_ERRNOS:
            return LocalWriteError(error, partial)
        return Interrupted(f"{remote.name}: {_first_line(error)}")
    return error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def fetch_file(
    source: Source,
    folder: str,
    remote: RemoteFile,
    abort: threading.Event,
    received: Callable[[int], None] = lambda n: None,
    log: Callable[[str], None] = lambda line: None,
) -> bool:
    """Fetch ``remote`` into its blob, attempt after attempt.

    An attempt that added bytes starts a new count; ``DOWNLOAD_ATTEMPTS`` failed attempts
    in a row without a new byte give the file up.

    Returns:
        ``attempt``'s: True when the content was checked against the Hub's hash here.

    Raises:
        GaveUp: the attempts ran out. Refused, LocalWriteError, Aborted: as ``attempt``.
    """
    failures, stalls = 0, 0
    partial = partial_path(folder, remote.etag)
    while True:
        before = file_size(partial)
        try:
            return attempt(source, folder, remote, abort, received)
        except (Stalled, Interrupted, Corrupt) as error:
            after = file_size(partial)
            failures, stalls = (1, 0) if after > before else (failures + 1, stalls)
            stalls += isinstance(error, Stalled)
            if failures >= DOWNLOAD_ATTEMPTS:
                raise GaveUp(remote, error, stalls >= failures) from None
            log(
                f"weights: {error}; resuming at byte {after} (attempt {failures + 1} of "
                f"{DOWNLOAD_ATTEMPTS})"
            )
            if abort.wait(RETRY_PAUSE_S):
                raise Aborted(f"{remote.name}: stopped") from None


def fetch_all(
    source: Source,
    folder: str,
    remotes: list[RemoteFile],
    abort: threading.Event,
    log: Callable[[str], None],
    should_stop: Callable[[], BaseException | None] = lambda: None,
    finished: Callable[[RemoteFile, bool], object] = lambda remote, checked: None,
    parallel: int = PARALLEL_FILES,
) -> None:
    """Fetch ``remotes``, ``parallel`` at a time, in daemon threads; ``finished(remote,
    checked)`` runs (in that thread) as each one is in place (``checked``: as
    ``fetch_file`` returns).

    Daemon threads, so that a signal ends the process at once (a ThreadPoolExecutor's
    workers are joined at exit). The first error stops the others (``abort``) and is
    raised once they have stopped; so is what ``should_stop`` returns (a lost lease),
    polled every second.

    Raises:
        TransferError: the first one a file met, or ``should_stop``'s.
    """
    import queue
    import threading

    todo: queue.SimpleQueue[RemoteFile] = queue.SimpleQueue()
    for remote in remotes:
        todo.put(remote)
    done: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()

    def work() -> None:
        while not abort.is_set():
            try:
                remote = todo.get_nowait()
            except queue.Empty:
                break
            try:
                finished(remote, fetch_file(source, folder, remote, abort, log=log))
            except BaseException as error:  # handed to the main thread
                done.put(error)
                return
        done.put(None)

    workers = [
        threading.Thread(target=work, name=f"download-{i}", daemon=True)
        for i in range(max(1, min(parallel, len(remotes))))
    ]
    for worker in workers:
        worker.start()
    first: BaseException | None = None
    stopped = 0
    while stopped < len(workers):
        try:
            outcome = done.get(timeout=1.0)
        except queue.Empty:
            outcome = should_stop() if first is None else None
            if outcome is None:
                continue
            first = outcome
            abort.set()
            continue
        stopped += 1
        if outcome is not None and (first is None or isinstance(first, Aborted)):
            first = outcome
            abort.set()
    if first is not None:
        raise first
