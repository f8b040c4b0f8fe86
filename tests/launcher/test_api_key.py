"""The API key reaches the engine, and nothing else: not its argv, not the output, not the
environment beyond the variable the engine reads.

Through the real launcher process, exec'ing the recording stand-ins of the engines
(tests/fakes/recorders: they record argv, environment and, for SGLang, the ``--config``
file it reads), and, for SGLang's config file, through SGLang's own reader in the pinned
environment.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.apikey import (
    KEY_FOLDER_PREFIX,
    KEY_VARIABLES,
    SGLANG_CONFIG_NAME,
    remove_stale_key_folders,
)
from tests.launcher.support import REPO, clean_env, run_launcher
from tests.launcher.test_exec import fake_env

KEY = "sk-longcat-Test_key.0123456789"


def launch(tmp_path: Path, engine: str, **extra: str):
    """Run the launcher (no dry run) with the recorders; return (result, record or None)."""
    record = tmp_path / "record.json"
    record.unlink(missing_ok=True)
    env = fake_env(tmp_path, ENGINE=engine, TMPDIR=str(tmp_path), **extra)
    result = run_launcher([], env)
    seen = json.loads(record.read_text()) if record.exists() else None
    return result, seen


def assert_never_shown(key: str, result, seen) -> None:
    printed = result.stdout + result.stderr
    assert key not in printed and "Traceback" not in printed
    if seen is not None:
        assert not any(key in word for word in seen["argv"]), seen["argv"]
        assert not any(name in seen["env"] for name in KEY_VARIABLES)


def key_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "api-key"
    path.write_text(text)
    path.chmod(0o600)
    return path


# --- vLLM: VLLM_API_KEY ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["variable", "file"])
def test_vllm_reads_the_key_from_its_environment_only(how, tmp_path):
    extra = (
        {"API_KEY": KEY}
        if how == "variable"
        else {"API_KEY_FILE": str(key_file(tmp_path, KEY + "\n"))}
    )
    result, seen = launch(tmp_path, "vllm", **extra)
    assert result.returncode == 0, result.stderr
    assert seen["env"]["VLLM_API_KEY"] == KEY
    assert "--api-key" not in seen["argv"]
    assert_never_shown(KEY, result, seen)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@pytest.mark.parametrize("with_api_key", [False, True])
def test_a_vllm_api_key_set_by_hand_is_refused_unshown(tmp_path, engine, with_api_key):
    """Set by hand, VLLM_API_KEY would bypass the launcher: SGLang ignores it (the API
    stays open) and the plan would call the API open while vLLM enforces it."""
    other = "sk-other-key-987654"
    extra = {"VLLM_API_KEY": other, **({"API_KEY": KEY} if with_api_key else {})}
    result, seen = launch(tmp_path, engine, **extra)
    assert result.returncode == 2 and seen is None
    message = result.stderr.strip()
    assert message.startswith("longcat-deploy: error: VLLM_API_KEY is refused (value not shown")
    assert "Give the key as API_KEY, or API_KEY_FILE" in message
    assert_never_shown(other, result, None)


def test_without_a_key_the_engine_gets_none(tmp_path):
    result, seen = launch(tmp_path, "vllm")
    assert result.returncode == 0 and "VLLM_API_KEY" not in seen["env"]
    result, seen = launch(tmp_path, "sglang")
    assert result.returncode == 0 and "--config" not in seen["argv"]


# --- SGLang: a private --config file ----------------------------------------------------


@pytest.mark.parametrize("how", ["variable", "file"])
def test_sglang_reads_the_key_from_a_private_config_file(how, tmp_path):
    extra = (
        {"API_KEY": KEY}
        if how == "variable"
        else {"API_KEY_FILE": str(key_file(tmp_path, KEY + "\r\n"))}
    )
    result, seen = launch(tmp_path, "sglang", **extra)
    assert result.returncode == 0, result.stderr
    assert_never_shown(KEY, result, seen)
    argv = seen["argv"]
    link = Path(argv[argv.index("--config") + 1])
    assert link.name == SGLANG_CONFIG_NAME and link.is_symlink()
    assert os.readlink(link).startswith("/proc/self/fd/")
    assert stat.S_IMODE(link.parent.stat().st_mode) == 0o700
    assert yaml.safe_load(seen["config"]) == {"api-key": KEY}
    # The printed command is the one that ran, with the link's path, never the key.
    assert f"--config {link}" in result.stdout


def test_the_link_leads_nowhere_outside_the_engine(tmp_path):
    """Read through the link by any other process, /proc/self is that process: the key is
    not there (the engine that held it has exited)."""
    result, seen = launch(tmp_path, "sglang", API_KEY=KEY)
    link = seen["argv"][seen["argv"].index("--config") + 1]
    reader = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\ntry:\n print(open(sys.argv[1]).read())\n"
            "except OSError as e:\n print('unreadable', e.errno)",
            link,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert KEY not in reader.stdout + reader.stderr


def test_each_start_removes_the_key_folders_of_engines_that_are_gone(tmp_path):
    """The link must outlive the exec, so a start leaves its folder; the next removes it."""
    folders = []
    for _ in range(3):
        result, seen = launch(tmp_path, "sglang", API_KEY=KEY)
        assert result.returncode == 0, result.stderr
        folders.append(Path(seen["argv"][seen["argv"].index("--config") + 1]).parent)
    assert sorted(p for p in tmp_path.iterdir() if p.name.startswith(KEY_FOLDER_PREFIX)) == [
        folders[-1]
    ]


def test_only_stale_key_folders_of_this_user_are_removed(tmp_path):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead, alive = int(gone.stdout), os.getppid()

    def folder(name, target="/proc/self/fd/7", extra=False):
        path = tmp_path / name
        path.mkdir()
        (path / SGLANG_CONFIG_NAME).symlink_to(target)
        if extra:
            (path / "other").write_text("")
        return path

    stale = [folder(f"{KEY_FOLDER_PREFIX}{dead}-a"), folder(f"{KEY_FOLDER_PREFIX}{os.getpid()}-b")]
    kept = [
        folder(f"{KEY_FOLDER_PREFIX}{alive}-c"),  # its engine may still read the link
        folder(f"{KEY_FOLDER_PREFIX}{dead}-d", extra=True),  # not only our link
        folder(f"{KEY_FOLDER_PREFIX}{dead}-e", target="/etc/passwd"),  # not our link
        folder(f"{KEY_FOLDER_PREFIX}x-f"),  # no pid
        folder(f"longcat-deploy-{dead}-g"),  # not a key folder
    ]
    assert sorted(remove_stale_key_folders(str(tmp_path))) == sorted(map(str, stale))
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_a_key_starting_with_a_dash_is_refused_on_sglang(tmp_path):
    result, seen = launch(tmp_path, "sglang", API_KEY="-" + KEY)
    assert result.returncode == 2 and seen is None
    assert "API_KEY" in result.stderr and "'-'" in result.stderr
    assert_never_shown("-" + KEY, result, seen)


def test_the_dry_run_refuses_a_key_starting_with_a_dash_on_sglang():
    """Checked with the configuration (entrypoint.settings), not at the exec: the dry run
    refuses what the launch would."""
    env = clean_env({"ENGINE": "sglang", "API_KEY": "-" + KEY})
    result = run_launcher(["--dry-run"], env)
    assert result.returncode == 2, result.stdout
    message = result.stderr.strip()
    assert message.count("\n") == 0 and "API_KEY is refused" in message and "'-'" in message
    assert_never_shown("-" + KEY, result, None)
    # vLLM takes any key from its environment.
    env["ENGINE"] = "vllm"
    assert run_launcher(["--dry-run"], env).returncode == 0


def test_a_key_file_whose_key_starts_with_a_dash_names_the_file_before_any_download(tmp_path):
    path = key_file(tmp_path, "-" + KEY + "\n")
    result, seen = launch(
        tmp_path,
        "sglang",
        API_KEY_FILE=str(path),
        DOWNLOAD="1",
        PREFLIGHT="on",
        HF_HOME=str(tmp_path / "hf"),
    )
    assert result.returncode == 2 and seen is None
    message = result.stderr.strip()
    assert message.startswith("longcat-deploy: error: API_KEY_FILE is "), message
    assert str(path) in message and "'-'" in message and len(message.splitlines()) == 1
    assert_never_shown("-" + KEY, result, seen)
    assert not (tmp_path / "hf").exists()  # nothing fetched, nothing probed


# --- API_KEY_FILE -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "cannot be read"),
        ("", "empty"),
        ("\n", "empty"),
        (f"{KEY} with spaces\n", "value not shown"),
        ("short\n", "value not shown"),
        ("sk-Schl\u00fcssel-123456\n", "outside ASCII"),
        ("x" * 5000, "at most 4096 bytes"),
    ],
)
def test_a_bad_key_file_is_refused_before_anything_starts(content, words, tmp_path):
    path = tmp_path / "missing" if content is None else key_file(tmp_path, content)
    result, seen = launch(tmp_path, "vllm", API_KEY_FILE=str(path), DOWNLOAD="1")
    assert result.returncode == 2 and seen is None
    message = result.stderr.strip()
    assert "API_KEY_FILE" in message and words in message, message
    assert len(message.splitlines()) == 1
    if content and content.strip() and len(content) < 100:
        assert content.strip() not in message


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_key_file_that_is_not_a_regular_file_is_refused_at_once(kind, tmp_path):
    """A FIFO would block open() until a writer came: refused without waiting, exit 2."""
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
        said = "a FIFO"
    elif kind == "device":
        path, said = Path("/dev/null"), "a character device"
    else:
        path, said = tmp_path, "a directory"
    env = fake_env(tmp_path, ENGINE="vllm", TMPDIR=str(tmp_path), API_KEY_FILE=str(path))
    result = run_launcher([], env, timeout=30)
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert "API_KEY_FILE" in message and said in message, message


def test_a_kubernetes_secret_volume_key_file_is_read_through_its_links(tmp_path):
    """A Secret volume mounts each key as KEY -> ..data/KEY, ..data -> ..<timestamp>
    (kubelet's atomic writer): links to a regular file, which are followed."""
    volume = tmp_path / "secret"
    stamped = volume / "..2026_01_01_00_00_00.000000001"
    stamped.mkdir(parents=True)
    (stamped / "api-key").write_text(KEY + "\n")
    (volume / "..data").symlink_to(stamped.name)
    (volume / "api-key").symlink_to("..data/api-key")
    result, seen = launch(tmp_path, "vllm", API_KEY_FILE=str(volume / "api-key"))
    assert result.returncode == 0, result.stderr
    assert seen["env"]["VLLM_API_KEY"] == KEY
    assert_never_shown(KEY, result, seen)


def test_the_dry_run_does_not_read_the_key_file(tmp_path):
    env = clean_env({"ENGINE": "vllm", "API_KEY_FILE": str(tmp_path / "not-yet")})
    result = run_launcher(["--dry-run"], env)
    assert result.returncode == 0, result.stderr
    assert "API_KEY_FILE" in result.stdout and str(tmp_path / "not-yet") in result.stdout


# --- properties ---------------------------------------------------------------------------

# Printable ASCII: a key outside ASCII is refused (an HTTP header cannot carry it;
# test_a_bad_key_file_is_refused_before_anything_starts, tests/launcher/test_secrets.py).
keys = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=48).filter(
    # A key must not occur in the argv by chance ("flashinf" is in "flashinfer"): none of
    # these characters is in any argv the launcher writes.
    lambda k: k[0] != "-" and any(c in "!#%&*+;<=>?@^|~" for c in k)
)


@settings(max_examples=25, deadline=None)
@given(
    key=keys, engine=st.sampled_from(["sglang", "vllm"]), how=st.sampled_from(["variable", "file"])
)
def test_a_key_never_appears_in_output_argv_or_the_engine_environment(
    key, engine, how, tmp_path_factory
):
    tmp_path = tmp_path_factory.mktemp("key")
    extra = (
        {"API_KEY": key}
        if how == "variable"
        else {"API_KEY_FILE": str(key_file(tmp_path, key + "\n"))}
    )
    result, seen = launch(tmp_path, engine, **extra)
    assert result.returncode == 0, result.stderr
    assert_never_shown(key, result, seen)
    others = {k: v for k, v in seen["env"].items() if k != "VLLM_API_KEY"}
    assert key not in json.dumps(others, ensure_ascii=False)
    if engine == "vllm":
        assert seen["env"]["VLLM_API_KEY"] == key
    else:
        assert yaml.safe_load(seen["config"]) == {"api-key": key}


# --- SGLang's own reader --------------------------------------------------------------------

READ_WITH_SGLANG = r"""
import json, sys
from entrypoint.apikey import sglang_key_config
from sglang.srt.server_args import prepare_server_args
keys = json.loads(sys.stdin.read())
got = []
for key in keys:
    link = sglang_key_config(key)
    args = prepare_server_args(["--model-path", "m", "--config", link])
    got.append([args.api_key, key in (args.launch_command or "")])
print("GOT:" + json.dumps(got))
"""


@pytest.mark.engines
def test_sglang_reads_the_key_file_with_its_own_config_reader(tmp_path):
    """The file as SGLang 0.5.23 reads it (srt/server_args.py, prepare_server_args), in the
    process that made it, as the engine is after the exec."""
    from tests.launcher.test_engine_contract import engine_python

    tricky = [
        KEY,
        'sk-"quoted"\\back',
        "sk-#not-a-comment: x",
        "ключ-schlüssel-密钥",
        "sk-'single'-{json}",
        "sk-0123456789" * 20,
    ]
    python = engine_python("sglang")
    done = subprocess.run(
        [str(python), "-c", READ_WITH_SGLANG],
        input=json.dumps(tricky),
        env=clean_env({"PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.split("GOT:", 1)[1])
    assert [key for key, _ in got] == tricky
    # SGLang's own record of its command line holds the merged key (the README says so:
    # it appears in SGLang's start-up log and /server_info, not in the process's argv).
    assert all(in_launch_command for _, in_launch_command in got)
