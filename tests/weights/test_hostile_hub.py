"""A mirror or a proxy at HF_ENDPOINT that answers what the real Hub never does: names that
would leave the cache, a listing the launcher cannot read; and a stored Hub token that no
HTTP header can carry. Each is refused with one line naming the cause, before anything is
written, never with a traceback.

The fake Hub's ``rewrite_model_info`` serves these answers (tests/fakes/hub.py says which
real behaviour it deviates from).
"""

from __future__ import annotations

import os

import pytest

from tests.fakes.hub import git_blob_id
from tests.weights.support import (
    CHECKPOINT,
    blob_dir,
    engine_record,
    launch,
    launcher_env,
    snapshot,
)
from tests.weights.test_prefetch import prefetch_env

SHARD_1 = "model-00001-of-00002.safetensors"


def repo_folder(hf_home):
    return hf_home / "hub" / ("models--" + CHECKPOINT.replace("/", "--"))


def last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


def quoted(value: str) -> str:
    """How a message starts to quote ``value``: ``repr``, cut after 50 characters (a message
    quotes at most 80, entrypoint.errors.shorten), without the closing quote."""
    return repr(value[:50])[:-1]


def sibling(body: dict, name: str) -> dict:
    (found,) = [s for s in body["siblings"] if s["rfilename"] == name]
    return found


def links_leaving(root) -> list[str]:
    """Symbolic links under ``root`` whose target lies outside it."""
    root = os.path.realpath(root)
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                target = os.path.realpath(path)
                if os.path.commonpath([root, target]) != root:
                    found.append(f"{path} -> {target}")
    return found


def assert_refused_unwritten(result, tmp_path, hub_url: str, *phrases: str) -> None:
    """Exit 4 with one line naming HF_ENDPOINT and ``phrases``; nothing outside the cache,
    no snapshot, no ref."""
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = last_line(result)
    assert f"the Hub at {hub_url} (HF_ENDPOINT)" in message, message
    for phrase in phrases:
        assert phrase in message, message
    assert not (tmp_path / "outside").exists(), sorted((tmp_path / "outside").rglob("*"))
    folder = repo_folder(tmp_path / "hf")
    assert not (folder / "snapshots").exists() and not (folder / "refs").exists()
    assert links_leaving(tmp_path / "hf") == []


# --- names that would leave the cache ---------------------------------------------------


@pytest.mark.parametrize("kind", ["parent segments", "absolute", "upper-case hex", "too short"])
def test_a_commit_that_is_not_a_commit_id_is_refused_before_anything_is_written(
    hub, repo, tmp_path, kind, launcher_python
):
    """prefetch, which a Job runs unattended: it exited 0 having written the snapshot where
    the server's commit pointed."""
    folder = repo_folder(tmp_path / "hf")
    outside = tmp_path / "outside" / "snap"
    real = repo.refs["main"]
    commit = {
        "parent segments": os.path.relpath(outside, folder / "snapshots"),
        "absolute": str(outside),
        "upper-case hex": real.upper(),
        "too short": real[:12],
    }[kind]
    repo.refs[commit] = real  # the mirror serves the files under that name too
    hub.rewrite_model_info = lambda body: dict(body, sha=commit)
    result = launch(prefetch_env(tmp_path, hub.url), ["prefetch"], python=launcher_python)
    assert_refused_unwritten(
        result, tmp_path, hub.url, f"commit {quoted(commit)}", "40 lowercase hex digits"
    )
    assert not [r for r in hub.requests if "/resolve/" in r.path]


@pytest.mark.parametrize(
    "kind", ["parent segments", "absolute", "backslash", "NUL", "empty segment", "dot segment"]
)
def test_a_file_name_that_leaves_the_snapshot_is_refused_before_anything_is_written(
    hub, repo, tmp_path, kind
):
    """The cache already holds the blob (an earlier start fetched it), so the launcher
    made the link without a request: a link outside the cache, to a blob the server chose."""
    files = repo.commits[repo.refs["main"]]
    blobs = blob_dir(tmp_path / "hf")
    blobs.mkdir(parents=True)
    (blobs / git_blob_id(files["tokenizer.json"])).write_bytes(files["tokenizer.json"])
    pointer_dir = snapshot(tmp_path / "hf", CHECKPOINT, repo.refs["main"])
    target = tmp_path / "outside" / "pwn.json"
    name = {
        "parent segments": os.path.relpath(target, pointer_dir),
        "absolute": str(target),
        "backslash": "..\\..\\..\\..\\..\\outside\\pwn.json",
        "NUL": "tokenizer\0.json",
        "empty segment": "sub//tokenizer.json",
        "dot segment": "./tokenizer.json",
    }[kind]

    def rename(body: dict) -> dict:
        sibling(body, "tokenizer.json")["rfilename"] = name
        return body

    hub.rewrite_model_info = rename
    result = launch(launcher_env(tmp_path, hub.url))
    assert_refused_unwritten(result, tmp_path, hub.url, f"file name {quoted(name)}")
    assert not [r for r in hub.requests if "/resolve/" in r.path]


@pytest.mark.parametrize(
    "field", ["LFS sha256 with parent segments", "blobId with parent segments", "short sha256"]
)
def test_a_blob_id_that_is_not_hex_of_its_length_is_refused_before_anything_is_written(
    hub, repo, tmp_path, field
):
    """The blob's name is the LFS sha256, else the git blob id: the partial file went to
    ``blobs/<that>.incomplete``, outside the cache."""
    blobs = blob_dir(tmp_path / "hf")
    escape = os.path.relpath(tmp_path / "outside" / "blob", blobs)

    def rewrite(body: dict) -> dict:
        if field == "blobId with parent segments":
            sibling(body, "config.json")["blobId"] = escape
        else:
            lfs = sibling(body, SHARD_1)["lfs"]
            lfs["sha256"] = escape if field.endswith("segments") else lfs["sha256"][:63]
        return body

    hub.rewrite_model_info = rewrite
    result = launch(launcher_env(tmp_path, hub.url))
    if field == "blobId with parent segments":
        phrases = ("config.json", "blobId", "40 lowercase hex digits")
    else:
        phrases = (SHARD_1, "LFS sha256", "64 lowercase hex digits")
    assert_refused_unwritten(result, tmp_path, hub.url, *phrases)
    assert not blobs.exists()
    assert not [r for r in hub.requests if "/resolve/" in r.path]


# --- a listing the launcher cannot read --------------------------------------------------


def drop(key: str):
    def rewrite(body: dict) -> dict:
        del body[key]
        return body

    return rewrite


def edit_sibling(name: str, change):
    def rewrite(body: dict) -> dict:
        change(sibling(body, name))
        return body

    return rewrite


MALFORMED = {
    "no id": (drop("id"), "it has no 'id'"),
    "no sha": (drop("sha"), "it has no 'sha'"),
    "no siblings": (drop("siblings"), "it has no 'siblings'"),
    "a file without rfilename": (
        edit_sibling("config.json", lambda s: s.pop("rfilename")),
        "it has no 'rfilename'",
    ),
    "an LFS file without sha256": (
        edit_sibling(SHARD_1, lambda s: s["lfs"].pop("sha256")),
        "it has no 'sha256'",
    ),
    "files that are not objects": (
        lambda body: dict(body, siblings=[s["rfilename"] for s in body["siblings"]]),
        "TypeError",
    ),
    "a listing that is not an object": (lambda body: [body], "TypeError"),
    "a file name that is not text": (
        edit_sibling("config.json", lambda s: s.update(rfilename=7)),
        "'rfilename' 7 is not text",
    ),
    "a size that is not a number": (
        edit_sibling(SHARD_1, lambda s: s.update(size="big")),
        f"the 'size' of {SHARD_1!r} is not a number of bytes",
    ),
    "an HTML page": (lambda body: b"<html><body>Sign in to the proxy</body></html>", "not JSON"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_listing_the_launcher_cannot_read_is_named_as_such(
    hub, repo, tmp_path, case, launcher_python
):
    rewrite, what = MALFORMED[case]
    hub.rewrite_model_info = rewrite
    result = launch(launcher_env(tmp_path, hub.url), python=launcher_python)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = last_line(result)
    assert (
        f"cannot look up {CHECKPOINT}@main: the Hub at {hub.url} (HF_ENDPOINT) answered with "
        "a model listing the launcher cannot read" in message
    ), message
    assert what in message, message
    assert "network path" not in result.stderr and "attempt 2" not in result.stderr
    assert len([r for r in hub.requests if r.path.startswith("/api/models/")]) == 1
    assert not repo_folder(tmp_path / "hf").exists()


# --- a stored Hub token that cannot be sent ----------------------------------------------

STORED = "hf_StoredTok3nValue"


def authorizations(requests) -> set:
    """The Authorization headers of the requests for the model (listing and files)."""
    model = "/" + CHECKPOINT + "/"
    return {
        r.authorization for r in requests if r.path.startswith(("/api/models/" + CHECKPOINT, model))
    }


@pytest.mark.parametrize(
    "content,why",
    [
        (b"hf_Stored\xff\xfeTok3n\n", "it is not UTF-8 text"),
        ("hf_Störed_Tok3nValue\n".encode(), "a character outside ASCII"),
        (b"hf_Stored Tok3nValue\n", "whitespace or a control character"),
        (b"hf_Stored\tTok3nValue", "whitespace or a control character"),
        (b"\xef\xbb\xbfhf_StoredTok3nValue\n", "starts with a byte-order mark"),
    ],
    ids=["not UTF-8", "not ASCII", "a space", "a tab", "a BOM"],
)
def test_a_stored_token_no_header_can_carry_is_refused_naming_its_file(
    hub, repo, tmp_path, content, why, launcher_python
):
    token_file = tmp_path / "secrets" / "hf-token"
    token_file.parent.mkdir()
    token_file.write_bytes(content)
    result = launch(
        launcher_env(tmp_path, hub.url, HF_TOKEN_PATH=token_file), python=launcher_python
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = last_line(result)
    assert f"the stored Hub token in {token_file} cannot be sent" in message, message
    assert why in message and "HF_TOKEN" in message, message
    assert "network path" not in result.stderr
    assert "Tok3n" not in result.stdout + result.stderr
    assert not [r for r in hub.requests if r.path.startswith("/api/models/")]


def _fifo(path):
    os.mkfifo(path)
    return path


def _directory(path):
    path.mkdir()
    return path


def _oversize(path):
    path.write_bytes(b"hf_" + b"A" * (2**14))  # one byte over settings.MAX_TOKEN_FILE_BYTES
    return path


@pytest.mark.parametrize(
    "make,why",
    [
        (_fifo, "it is a FIFO (named pipe)"),
        (_directory, "it is a directory, not a regular file"),
        (lambda _: "/dev/zero", "it is a character device"),
        (_oversize, "it is 16387 bytes"),
    ],
    ids=["FIFO", "directory", "/dev/zero", "over 16 KiB"],
)
def test_a_token_path_huggingface_hub_cannot_read_as_a_token_is_refused_at_once(
    hub, repo, tmp_path, make, why, launcher_python
):
    """huggingface_hub reads HF_TOKEN_PATH whole (utils/_auth.py, _get_token_from_file): a
    FIFO blocked the launch for ever, /dev/zero never ends, a directory was reported as a
    network failure (exit 4). Each is refused, with exit 2, before anything reads it."""
    token_path = make(tmp_path / "hf-token")
    result = launch(
        launcher_env(tmp_path, hub.url, HF_TOKEN_PATH=token_path),
        python=launcher_python,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = last_line(result)
    assert f"the stored Hub token in {token_path} cannot be sent: {why}" in message, message
    assert "AAAA" not in result.stdout + result.stderr
    assert not [r for r in hub.requests if r.path.startswith("/api/models/")]


def test_a_token_path_at_dev_null_sends_no_token(hub, repo, tmp_path, launcher_python):
    """/dev/null is a character device, but reads empty: huggingface_hub finds no token."""
    env = launcher_env(tmp_path, hub.url, HF_TOKEN_PATH="/dev/null")
    result = launch(env, python=launcher_python)
    assert result.returncode == 0, result.stderr
    assert authorizations(hub.requests) == {None}


def test_a_token_in_a_mounted_cache_is_checked_too(hub, repo, tmp_path):
    """Without HF_TOKEN_PATH the file is HF_HOME/token (huggingface_hub constants.py)."""
    token_file = tmp_path / "hf" / "token"
    token_file.parent.mkdir()
    token_file.write_bytes(b"hf_Stored Tok3nValue\n")
    result = launch(launcher_env(tmp_path, hub.url))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"the stored Hub token in {token_file} cannot be sent" in last_line(result)
    assert "Tok3n" not in result.stdout + result.stderr


def test_a_token_path_at_the_process_environment_is_refused_unshown(
    hub, repo, tmp_path, launcher_python
):
    """HF_TOKEN_PATH=/proc/self/environ: NUL-separated variables, which huggingface_hub
    read as the token and put in the Authorization header."""
    env = launcher_env(tmp_path, hub.url, HF_TOKEN_PATH="/proc/self/environ")
    result = launch(env, python=launcher_python)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = last_line(result)
    assert "the stored Hub token in /proc/self/environ cannot be sent" in message, message
    assert "whitespace or a control character" in message
    output = result.stdout + result.stderr
    assert f"FAKE_ENGINE_RECORD={env['FAKE_ENGINE_RECORD']}" not in output
    assert not [r for r in hub.requests if r.path.startswith("/api/models/")]


# --- huggingface_hub's stored tokens, OAuth refresh and Trusted Publishers exchange -------

OTHER = "hf_OtherAcct8Tok3n"
REFRESH = "hfrt_Refr3shTok3nValue"
NEW = "hf_NewAcc3ssTok3nValue"


def logged_in(tmp_path, stored_tokens: str, token: str = STORED):
    """An HF_HOME as `hf auth login` leaves it: the active token, and stored_tokens beside
    it (huggingface_hub utils/_auth.py, _save_token: one [name] section per token, with
    hf_token, and refresh_token and expires_at for an OAuth login)."""
    home = tmp_path / "hf"
    home.mkdir(exist_ok=True)
    (home / "token").write_text(token)
    (home / "stored_tokens").write_text(stored_tokens)
    return home


EXPIRED = f"[work]\nhf_token = {STORED}\nrefresh_token = {REFRESH}\nexpires_at = 1000\n"


@pytest.mark.parametrize(
    "content",
    [
        f"[work]\nhf_token = {STORED}\n[personal]\nhf_token {OTHER}\n",
        f"refresh_token = {REFRESH}\n[work]\nhf_token = {STORED}\n",
        b"[work]\nhf_token = \xff" + OTHER.encode(),
    ],
    ids=["a line without '='", "no section first", "not UTF-8"],
)
def test_a_stored_tokens_file_huggingface_hub_cannot_parse_is_refused_unquoted(
    hub, repo, tmp_path, content
):
    """huggingface_hub logged "Error parsing stored tokens file" with the line quoted:
    another account's token, or a refresh token, was printed (pass 11)."""
    home = logged_in(tmp_path, "")
    (home / "stored_tokens").write_bytes(
        content if isinstance(content, bytes) else content.encode()
    )
    result = launch(launcher_env(tmp_path, hub.url))
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert f"huggingface_hub's stored tokens in {home / 'stored_tokens'} cannot be read" in (
        last_line(result)
    )
    assert OTHER not in output and REFRESH not in output and "Tok3n" not in output
    assert not [r for r in hub.requests if r.path.startswith("/api/models/")]


def test_an_oauth_refresh_that_never_answers_is_bounded_by_the_stall_bound(
    hub, repo, tmp_path, launcher_python
):
    """huggingface_hub's refresh is bounded per socket operation (HF_HUB_DOWNLOAD_TIMEOUT):
    with that at 120 s, the launch waited past a minute (pass 11)."""
    import time

    logged_in(tmp_path, EXPIRED)
    hub.oauth = lambda fields: None  # accept, never answer
    env = launcher_env(tmp_path, hub.url, DOWNLOAD_STALL_S=2, HF_HUB_DOWNLOAD_TIMEOUT=120)
    started = time.monotonic()
    result = launch(env, timeout=60, python=launcher_python)
    took = time.monotonic() - started
    assert result.returncode == 4, result.stdout + result.stderr
    assert took < 15, took
    message = last_line(result)
    assert "cannot get the Hub token: the refresh of the OAuth token stored in" in message
    assert f"did not finish within 2 s (DOWNLOAD_STALL_S): {hub.url} did not answer" in message
    assert REFRESH not in result.stdout + result.stderr
    assert hub.oauth_requests[0]["refresh_token"] == REFRESH  # huggingface_hub's own request


def test_a_refused_refresh_never_prints_the_refresh_token_or_another_accounts(hub, repo, tmp_path):
    """The Hub's refusal may quote the refresh token; huggingface_hub logs it whole."""
    logged_in(tmp_path, EXPIRED + f"[personal]\nhf_token = {OTHER}\n")
    hub.oauth = lambda fields: (
        400,
        {"error": "invalid_grant", "error_description": f"token {fields['refresh_token']} revoked"},
    )
    result = launch(launcher_env(tmp_path, hub.url))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "has expired and could not be refreshed" in output  # huggingface_hub's warning
    assert REFRESH not in output and OTHER not in output and STORED not in output
    assert authorizations(hub.requests) == {f"Bearer {STORED}"}  # the old token, as before


def test_a_rotated_refresh_token_is_never_printed(hub, repo, tmp_path):
    """huggingface_hub saves the rotated refresh token (utils/_auth.py, _save_token); a
    server echoing it printed it whole (pass 12)."""
    rotated = "hfrt_Rot8tedRefr3sh77x"
    logged_in(tmp_path, EXPIRED)
    hub.oauth = lambda fields: (
        200,
        {"access_token": NEW, "refresh_token": rotated, "expires_in": 28800},
    )
    hub.rewrite_model_info = lambda body: dict(body, id=f"{rotated} {NEW}", sha="x")
    result = launch(launcher_env(tmp_path, hub.url))
    output = result.stdout + result.stderr
    assert result.returncode == 4, output
    assert rotated not in output and NEW not in output and REFRESH not in output


@pytest.mark.parametrize("access_token", ["hf_NewAcc3ss\n", "hf_NewAcc\u00e9ss", "hf_New Acc3ss"])
def test_a_refreshed_token_no_header_can_carry_is_named_as_such(hub, repo, tmp_path, access_token):
    """It was retried three times as a network failure, or called an unreadable listing."""
    logged_in(tmp_path, EXPIRED)
    hub.oauth = lambda fields: (200, {"access_token": access_token, "expires_in": 28800})
    result = launch(launcher_env(tmp_path, hub.url))
    assert result.returncode == 4, result.stdout + result.stderr
    message = last_line(result)
    assert "the refresh of the OAuth token stored in" in message
    assert "gave a token that is not printable ASCII without spaces" in message
    assert "network path" not in result.stderr and "listing" not in result.stderr
    assert not [r for r in hub.requests if r.path.startswith("/api/models/")]


def test_a_401_names_the_token_that_was_refused(hub, repo, tmp_path):
    """A 401 (an expired or revoked token) was reported as "Check the network path"."""
    hub.valid_tokens = {"hf_TheRightTok3nValue"}
    env = launcher_env(tmp_path, hub.url, HF_TOKEN="hf_WrongTok3nValue9")
    result = launch(env)
    assert result.returncode == 4, result.stdout + result.stderr
    message = last_line(result)
    assert "answered 401 Unauthorized" in message
    assert "it refused HF_TOKEN (expired, revoked or mistyped)" in message
    assert "network path" not in message and "Tok3n" not in result.stderr


def test_a_refreshed_token_is_sent_and_never_printed(hub, repo, tmp_path, launcher_python):
    logged_in(tmp_path, EXPIRED)
    hub.oauth = lambda fields: (
        200,
        {"access_token": NEW, "token_type": "bearer", "expires_in": 28800},
    )
    result = launch(launcher_env(tmp_path, hub.url, HF_DEBUG=1), python=launcher_python)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert authorizations(hub.requests) == {f"Bearer {NEW}"}
    assert NEW not in output and REFRESH not in output
    assert len(hub.oauth_requests) == 1  # resolved once, not per request


def test_trusted_publishers_without_an_identity_token_is_a_configuration_error(hub, repo, tmp_path):
    """It was exit 4 with "Check the network path" (pass 11)."""
    env = launcher_env(tmp_path, hub.url, HF_OIDC_RESOURCE="meituan-longcat")
    result = launch(env)
    assert result.returncode == 2, result.stdout + result.stderr
    message = last_line(result)
    assert message.startswith("longcat-deploy: error: HF_OIDC_RESOURCE is 'meituan-longcat'")
    assert "HF_OIDC_ID_TOKEN" in message and "network path" not in message
    assert ".." not in message
    assert not hub.requests


@pytest.mark.parametrize("answer", ["refused", "granted"])
def test_a_trusted_publishers_exchange_is_named_as_such(hub, repo, tmp_path, answer):
    identity = "eyJ0eXAiOiJKV1QiIdentityTok3n"
    hub.oauth = lambda fields: (
        (400, {"error": "invalid_request", "error_description": "bad subject token"})
        if answer == "refused"
        else (200, {"access_token": NEW, "token_type": "bearer", "expires_in": 3600})
    )
    env = launcher_env(
        tmp_path, hub.url, HF_OIDC_RESOURCE="meituan-longcat", HF_OIDC_ID_TOKEN=identity
    )
    result = launch(env)
    output = result.stdout + result.stderr
    assert identity not in output and NEW not in output
    assert hub.oauth_requests[0]["subject_token"] == identity
    if answer == "refused":
        assert result.returncode == 4, output
        message = last_line(result)
        assert "cannot get the Hub token: the exchange of an identity token for " in message
        assert "HF_OIDC_RESOURCE=meituan-longcat failed: BadRequestError: " in message
        assert "(HTTP 400)" in message and ".." not in message
        assert "model listing" not in output
    else:
        assert result.returncode == 0, output
        assert authorizations(hub.requests) == {f"Bearer {NEW}"}


def test_a_good_stored_token_is_sent_and_a_bad_one_unused_is_not_refused(
    hub, repo, tmp_path, launcher_python
):
    """The check refuses only a stored token huggingface_hub would send: not with HF_TOKEN
    (or HUGGING_FACE_HUB_TOKEN) set, nor with HF_HUB_DISABLE_IMPLICIT_TOKEN on
    (huggingface_hub utils/_headers.py, get_token_to_send)."""
    good = tmp_path / "good-token"
    good.write_text(STORED + "\n")
    env = launcher_env(tmp_path / "good", hub.url, HF_TOKEN_PATH=good)
    result = launch(env, python=launcher_python)
    assert result.returncode == 0, result.stderr
    assert authorizations(hub.requests) == {f"Bearer {STORED}"}
    assert STORED not in result.stdout + result.stderr

    bad = tmp_path / "bad-token"
    bad.write_bytes(b"hf_Stored\xffTok3n")
    for name, extra in [
        ("hf-token", {"HF_TOKEN": "hf_EnvironmentTok3n"}),
        ("legacy", {"HUGGING_FACE_HUB_TOKEN": "hf_EnvironmentTok3n"}),
        ("implicit-off", {"HF_HUB_DISABLE_IMPLICIT_TOKEN": "1"}),
    ]:
        seen = len(hub.requests)
        env = launcher_env(tmp_path / name, hub.url, HF_TOKEN_PATH=bad, **extra)
        result = launch(env, python=launcher_python)
        assert result.returncode == 0, (name, result.stderr)
        assert engine_record(env)["argv"][2].endswith(repo.refs["main"])
        expected = None if name == "implicit-off" else "Bearer hf_EnvironmentTok3n"
        assert authorizations(hub.requests[seen:]) == {expected}, name


def test_a_listing_that_trickles_in_is_bounded_in_total(hub, repo, tmp_path):
    """One byte every 0.5 s beats any per-read timeout: the launch hung past a minute,
    printing nothing (pass 12). The listing now has a total deadline, DOWNLOAD_STALL_S."""
    import time

    hub.drip_model_info = 0.5
    env = launcher_env(tmp_path, hub.url, DOWNLOAD_STALL_S=2)
    started = time.monotonic()
    result = launch(env, timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 4, result.stdout + result.stderr
    assert took < 45, took  # 3 attempts of 2 * 2 + 5 s, and the pauses between them
    message = last_line(result)
    assert f"{hub.url} did not answer in full within 9 s (twice DOWNLOAD_STALL_S" in message
    assert "3 times" in message


@pytest.mark.parametrize(
    "name, make, says",
    [
        ("SSL_CERT_FILE", lambda p: os.mkfifo(p), "It is not a regular file"),
        ("SSL_CERT_FILE", lambda p: None, "Nothing is there"),
        ("SSL_CERT_DIR", lambda p: p.write_text(""), "It is not a directory"),
    ],
    ids=["a FIFO", "missing", "a file for a directory"],
)
def test_certificate_paths_openssl_cannot_read_are_refused_before_any_request(
    hub, repo, tmp_path, name, make, says
):
    """A FIFO blocked the first request; a missing file was a FileNotFoundError naming no
    file, reported as a network failure (pass 12)."""
    path = tmp_path / "ca"
    make(path)
    result = launch(launcher_env(tmp_path, hub.url, **{name: path}), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    message = last_line(result)
    assert message.startswith(f"longcat-deploy: error: {name} is '{path}'") and says in message
    assert not hub.requests


def test_two_secrets_where_one_holds_the_other_are_blanked_whole_in_a_hub_message():
    """The token was blanked first, alone, and the API key's tail was printed from a
    server's 403 message (pass 13)."""
    from entrypoint.output import configure
    from entrypoint.weights import _summary

    token, key = "hfTOKq7Zx91LmWv3", "hfTOKq7Zx91LmWv3Zsuffix12"
    configure([token, key])
    try:
        text = _summary(PermissionError(f"403 Forbidden: A={key} B={token}"))
    finally:
        configure([])
    assert text == "PermissionError: 403 Forbidden: A=*** B=***"
