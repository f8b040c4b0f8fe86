"""A small Hugging Face Hub on 127.0.0.1, for the real huggingface_hub to download from.

It answers the requests huggingface_hub makes for a model download, in the Hub's format:

- ``GET /api/models/{repo}[/revision/{rev}]``: model info with ``sha`` and ``siblings``
  (sizes, blob ids, LFS metadata), as ``HfApi.model_info(files_metadata=True)`` reads it;
- ``GET /api/models/{repo}/tree/{rev}[/{path}]``: the file listing (``list_repo_tree``);
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: file metadata headers (``X-Repo-Commit``,
  ``ETag``/``X-Linked-Etag``, ``X-Linked-Size``) and contents, with HTTP range requests.

Every request is recorded (``requests``), and faults can be planted: cut a file's transfer
once part-way (``cut_once``), pause part-way until the test says so (``pause_at``), answer
500 for a file (``broken``), report a size the files do not have (``FakeRepo.reported_size``),
stop sending a file's bytes at an offset while keeping the connection open (``stall_at``),
refuse a file with 403 (``forbidden``), accept every connection and never answer
(``silent``), or send a model info the real Hub never sends (``rewrite_model_info``).
Held connections are let go when the server shuts down.
``POST /oauth/token`` answers with ``oauth`` (a function of the form fields: a status
and a JSON body, or ``None`` to hold the connection without an answer), as the Hub's
OAuth token endpoint answers huggingface_hub's refresh (``utils/_oauth_device.py``,
``refresh_access_token``: a form with ``grant_type=refresh_token`` and
``refresh_token``) and its Trusted Publishers exchange (``_oidc.py``,
``exchange_oidc_token``: JSON with ``subject_token`` and ``resource``): 200 with
``access_token``, ``token_type``, ``expires_in`` and an optional rotated
``refresh_token``, or 400 with ``error`` and ``error_description`` (RFC 6749, sections
5.1 and 5.2); without ``oauth``, 404. Each body received is kept in ``oauth_requests``.
With ``signed_redirects``, a GET of an LFS file's ``/resolve/`` URL answers 302 with a
``/cdn/...`` URL signed by AWS Signature Version 4 query parameters (``SIGNATURE`` is the
signature), as the Hub sends large files to its CDN (huggingface_hub/file_download.py:
``hf_hub_url``'s docstring; ``_get_metadata_or_catch_error``, which downloads from the
redirect's location, "a signed CDN url", without Authorization).
A repository with a ``token`` answers 401 without ``Authorization: Bearer <token>``, as the
Hub does for private repositories. With ``valid_tokens`` set, a request whose bearer token
is not one of them answers 401 with ``X-Error-Message: Invalid credentials in
Authorization header`` and no ``X-Error-Code``, as the Hub answers an invalid or revoked
token on any repository (huggingface_hub ``utils/_http.py``, ``hf_raise_for_status``,
tells that message apart from a private repository's 401).
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

MiB = 2**20
LFS_SUFFIXES = (".safetensors", ".bin")
# The X-Amz-Signature of every redirect when FakeHub.signed_redirects is set.
SIGNATURE = "5ea1ed0fa4e1e5ba5e16c0ffee0ddba11de7ec7ab1e5ca1ab1eb0a710ad5a1e5"


def longcat_like_files(shard_sizes=(12 * MiB, 1 * MiB), seed: int = 0) -> dict[str, bytes]:
    """A tiny repository laid out like meituan-longcat/LongCat-Flash-Chat.

    The first shard is larger than huggingface_hub's 10 MiB download chunk, so a transfer cut
    after 11 MiB has written a chunk that a range request can resume from. A new dict each
    call; the bytes are made once per (sizes, seed) in a test run.
    """
    return dict(_longcat_like_files(tuple(shard_sizes), seed))


@functools.lru_cache(maxsize=8)
def _longcat_like_files(shard_sizes: tuple[int, ...], seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    shards = [
        f"model-{i:05d}-of-{len(shard_sizes):05d}.safetensors"
        for i in range(1, len(shard_sizes) + 1)
    ]
    files = {
        "config.json": json.dumps(
            {
                "architectures": ["LongcatFlashForCausalLM"],
                "model_type": "longcat_flash",
                "auto_map": {
                    "AutoConfig": "configuration_longcat_flash.LongcatFlashConfig",
                    "AutoModelForCausalLM": "modeling_longcat_flash.LongcatFlashForCausalLM",
                },
            }
        ).encode(),
        "configuration_longcat_flash.py": b"class LongcatFlashConfig: pass\n",
        "modeling_longcat_flash.py": b"class LongcatFlashForCausalLM: pass\n",
        "generation_config.json": b'{"do_sample": true}',
        "tokenizer.json": b'{"model": {"type": "BPE"}}',
        "tokenizer_config.json": b'{"chat_template": "[Round 0] USER:{query} ASSISTANT:"}',
        "special_tokens_map.json": b"{}",
        "model.safetensors.index.json": json.dumps(
            {
                "metadata": {"total_size": sum(shard_sizes)},
                "weight_map": {f"layer.{i}.weight": name for i, name in enumerate(shards)},
            }
        ).encode(),
        # Not loaded by the engines: must not be downloaded.
        "README.md": b"# LongCat-Flash-Chat\n",
        "figures/benchmark.png": b"\x89PNG fake",
        "pytorch_model.bin": b"a PyTorch duplicate of the weights",
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
    }
    for name, size in zip(shards, shard_sizes):
        files[name] = rng.randbytes(size)
    return files


@functools.lru_cache(maxsize=64)
def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data``, computed once per content in a test run."""
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=64)
def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeRepo:
    """A model repository: commits (files per commit hash) and refs (branch/tag -> commit)."""

    def __init__(self, repo_id: str, files: dict[str, bytes], token: str | None = None):
        self.repo_id = repo_id
        self.token = token
        self.commits: dict[str, dict[str, bytes]] = {}
        self.refs: dict[str, str] = {}
        self.reported_size: dict[str, int] = {}
        self.commit(files, "main")

    def commit(self, files: dict[str, bytes], ref: str) -> str:
        """Add a commit holding ``files`` and point ``ref`` at it; return its hash."""
        digest = hashlib.sha1(
            repr(sorted((name, sha256_hex(data)) for name, data in files.items())).encode()
        )
        sha = digest.hexdigest()
        self.commits[sha] = dict(files)
        self.refs[ref] = sha
        return sha

    def resolve(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)

    def entry(self, name: str, data: bytes) -> dict:
        size = self.reported_size.get(name, len(data))
        entry = {"path": name, "size": size, "oid": git_blob_id(data)}
        if name.endswith(LFS_SUFFIXES):
            entry["lfs"] = {
                "oid": sha256_hex(data),
                "size": size,
                "pointerSize": 134,
            }
        return entry


class Request:
    """One request the server received."""

    __slots__ = ("method", "path", "range", "authorization")

    def __init__(self, method, path, range_, authorization):
        self.method, self.path, self.range, self.authorization = method, path, range_, authorization

    def __repr__(self):
        return f"{self.method} {self.path}" + (f" [{self.range}]" if self.range else "")


class FakeHub(ThreadingHTTPServer):
    """The server; use as a context manager, point ``HF_ENDPOINT`` at ``url``."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[Request] = []
        self.cut_once: dict[str, int] = {}
        self.pause_at: dict[str, tuple[int, threading.Event, threading.Event]] = {}
        self.broken: set[str] = set()
        # name -> offset: every GET of the file sends its bytes up to that offset of the
        # file, then nothing more while the connection stays open (a stalled transfer).
        self.stall_at: dict[str, int] = {}
        # Files answered with 403 Forbidden, as a Hub (or a mirror) refuses a file.
        self.forbidden: set[str] = set()
        # Read every request, then answer nothing (a Hub that accepts and never answers).
        self.silent = False
        # GET of an LFS file: 302 to a signed CDN URL (the module's docstring).
        self.signed_redirects = False
        # The model info body -> what to send instead (JSON, or bytes as they are). A
        # deliberate deviation from the real Hub, whose answer this fake otherwise copies:
        # the Hub sends an "id", a "sha" that is a git commit id (40 lowercase hex digits,
        # huggingface_hub file_download.py, REGEX_COMMIT_HASH), and per file an object
        # with an "rfilename" that is its path in the git tree (relative, no ".."), a
        # "blobId" (git's 40-hex object id) and for LFS files an "lfs" object with a
        # "sha256" (64 hex, file_download.py, REGEX_SHA256); huggingface_hub hf_api.py,
        # ModelInfo.__init__, reads exactly those keys. This stands for what a mirror or a
        # proxy at HF_ENDPOINT can send instead: a hostile one (names that leave the cache)
        # or a broken one (keys missing, entries that are not objects, a 200 HTML page).
        self.rewrite_model_info: Callable[[dict], object] | None = None
        # Send the model info one byte every this many seconds (a server that holds a
        # request open with a trickle, which no per-read timeout ends); None: at once.
        self.drip_model_info: float | None = None
        # The bearer tokens the Hub knows; None: any (see the module's docstring).
        self.valid_tokens: set[str] | None = None
        # POST /oauth/token: the form (or JSON) fields -> (status, body), or None to hold.
        self.oauth: Callable[[dict], tuple[int, dict] | None] | None = None
        self.oauth_requests: list[dict] = []
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def gets(self, name: str) -> list[Request]:
        """The GET requests for the contents of file ``name`` (any repo, any revision)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r.method == "GET" and "/resolve/" in r.path and r.path.endswith("/" + name)
            ]

    def __enter__(self):
        self._thread.start()
        return self

    def handle_error(self, request, client_address):
        """Quiet about clients that went away mid-answer (a launcher killed by a test)."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    def hold(self, seconds: float = 120) -> None:
        """Keep a connection open without sending anything, until the server shuts down."""
        self.closing.wait(seconds)

    def __exit__(self, *exc):
        self.closing.set()
        for _, _, release in self.pause_at.values():
            release.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeHub

    def log_message(self, format, *args):  # quiet
        pass

    def do_GET(self):
        self._handle(head=False)

    def do_HEAD(self):
        self._handle(head=True)

    def do_POST(self):
        from urllib.parse import parse_qsl

        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            fields = json.loads(raw or "{}")
        else:
            fields = dict(parse_qsl(raw))
        with self.server.lock:
            self.server.requests.append(
                Request("POST", self.path, None, self.headers.get("Authorization"))
            )
            self.server.oauth_requests.append(fields)
        if self.path != "/oauth/token" or self.server.oauth is None:
            return self._not_found("EntryNotFound", f"no route {self.path}")
        answer = self.server.oauth(fields)
        if answer is None:
            self.close_connection = True
            return self.server.hold()
        self._send_json(*answer)

    def _send_json(self, status: int, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _drip(self, data: bytes, every: float):
        """Answer 200 with ``data``, one byte every ``every`` seconds."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for i in range(len(data)):
            if self.server.closing.wait(every):
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()

    def _not_found(self, code: str, message: str):
        self._send_json(
            404, {"error": message}, [("X-Error-Code", code), ("X-Error-Message", message)]
        )

    def _handle(self, head: bool):
        split = urlsplit(self.path)
        parts = [unquote(p) for p in split.path.split("/")[1:]]
        with self.server.lock:
            self.server.requests.append(
                Request(
                    self.command,
                    split.path,
                    self.headers.get("Range"),
                    self.headers.get("Authorization"),
                )
            )
        if self.server.silent:
            self.close_connection = True
            return self.server.hold()
        bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if (
            self.server.valid_tokens is not None
            and bearer
            and bearer not in self.server.valid_tokens
        ):
            message = "Invalid credentials in Authorization header"
            return self._send_json(401, {"error": message}, [("X-Error-Message", message)])
        if parts[0] == "cdn" and len(parts) >= 5:  # /cdn/{org}/{name}/{sha}/{path}
            repo = self.server.repos.get("/".join(parts[1:3]))
            files = repo.commits.get(parts[3], {}) if repo else {}
            name = "/".join(parts[4:])
            if repo is None or name not in files:
                return self._not_found("EntryNotFound", f"no such object {split.path}")
            return self._file(repo, parts[3], name, files[name], head, signed=True)
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id, rest = "/".join(parts[2:4]), parts[4:]
        elif len(parts) >= 5 and parts[2] == "resolve":
            repo_id, rest = "/".join(parts[:2]), parts[2:]
        else:
            return self._not_found("EntryNotFound", f"no route {split.path}")
        repo = self.server.repos.get(repo_id)
        if repo is None:
            return self._not_found("RepoNotFound", "Repository not found")
        if repo.token and self.headers.get("Authorization") != f"Bearer {repo.token}":
            return self._send_json(
                401,
                {"error": "Invalid credentials"},
                [("X-Error-Code", "RepoNotFound"), ("X-Error-Message", "Invalid credentials")],
            )
        if not rest or rest[0] == "revision":
            revision = rest[1] if len(rest) > 1 else "main"
        else:
            revision = rest[1]
        sha = repo.resolve(revision)
        if sha is None:
            return self._not_found("RevisionNotFound", f"Invalid rev id: {revision}")
        files = repo.commits[sha]
        if not rest or rest[0] == "revision":
            siblings = []
            for name, data in sorted(files.items()):
                entry = repo.entry(name, data)
                sibling = {"rfilename": name, "size": entry["size"], "blobId": entry["oid"]}
                if "lfs" in entry:
                    sibling["lfs"] = {
                        "sha256": entry["lfs"]["oid"],
                        "size": entry["size"],
                        "pointerSize": 134,
                    }
                siblings.append(sibling)
            body = {
                "id": repo_id,
                "modelId": repo_id,
                "sha": sha,
                "private": bool(repo.token),
                "gated": False,
                "disabled": False,
                "tags": [],
                "siblings": siblings,
                "lastModified": "2025-09-01T00:00:00.000Z",
            }
            rewrite = self.server.rewrite_model_info
            if self.server.drip_model_info is not None:
                return self._drip(json.dumps(body).encode(), self.server.drip_model_info)
            return self._send_json(200, body if rewrite is None else rewrite(body))
        if rest[0] == "tree":
            prefix = "/".join(rest[2:])
            entries = [
                dict(repo.entry(name, data), type="file")
                for name, data in sorted(files.items())
                if not prefix or name.startswith(prefix.rstrip("/") + "/")
            ]
            return self._send_json(200, entries)
        if rest[0] != "resolve":
            return self._not_found("EntryNotFound", "unknown endpoint")
        name = "/".join(rest[2:])
        if name not in files:
            return self._not_found(
                "EntryNotFound",
                f"{name} does not exist",
            )
        return self._file(repo, sha, name, files[name], head)

    def _file(
        self, repo: FakeRepo, sha: str, name: str, data: bytes, head: bool, signed: bool = False
    ):
        if name in self.server.broken and not head:
            return self._send_json(500, {"error": "Internal Error"})
        if self.server.signed_redirects and not head and not signed and name.endswith(LFS_SUFFIXES):
            location = (
                f"{self.server.url}/cdn/{repo.repo_id}/{sha}/{name}"
                "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                "&X-Amz-Credential=AKIAFAKEHUB%2F20250901%2Fus-east-1%2Fs3%2Faws4_request"
                f"&X-Amz-Date=20250901T000000Z&X-Amz-Expires=3600&X-Amz-Signature={SIGNATURE}"
                "&X-Amz-SignedHeaders=host"
            )
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if name in self.server.forbidden:
            # No X-Error-Code: a plain refusal, as a mirror or a proxy in front of the Hub
            # answers (huggingface_hub maps it to HfHubHTTPError, utils/_http.py).
            return self._send_json(403, {"error": "Access to this file is forbidden"})
        entry = repo.entry(name, data)
        headers = [
            ("X-Repo-Commit", sha),
            ("ETag", f'"{entry["oid"]}"'),
            ("Accept-Ranges", "bytes"),
            ("Content-Type", "application/octet-stream"),
        ]
        if "lfs" in entry:
            headers += [
                ("X-Linked-Etag", f'"{entry["lfs"]["oid"]}"'),
                ("X-Linked-Size", str(len(data))),
            ]
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes=") and not head:
            start = int(wanted[len("bytes=") :].split("-", 1)[0])
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}"))
        self.send_response(status)
        for header, value in headers:
            self.send_header(header, value)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if head:
            return
        body = data[start:]
        with self.server.lock:
            cut = self.server.cut_once.pop(name, None) if status == 200 else None
            pause = self.server.pause_at.get(name) if status == 200 else None
        if cut is not None:  # send part of the body, then drop the connection
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        stall = self.server.stall_at.get(name)
        if stall is not None:  # the bytes up to the offset, then silence on an open connection
            self.wfile.write(body[: max(0, stall - start)])
            self.wfile.flush()
            self.close_connection = True
            return self.server.hold()
        if pause is not None:
            offset, reached, release = pause
            self.wfile.write(body[:offset])
            self.wfile.flush()
            reached.set()
            release.wait(60)
            body = body[offset:]
        self.wfile.write(body)
