"""Bad input and faults, each with the smallest input that once went wrong: a clear message
and a documented exit status, a bounded time, and never a traceback."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from entrypoint.engines import vllm
from entrypoint.execute import engine_environment
from entrypoint.health import engine_process, http_health, pid_file
from tests.launcher.support import REPO, clean_env, run_launcher, run_with_a_closed_descriptor

FAKES = Path(__file__).resolve().parents[1] / "fakes" / "recorders"


def refused(result: subprocess.CompletedProcess, status: int = 2) -> str:
    """The one-line message of a refusal; asserts the status and that nothing else ran."""
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("longcat-deploy: error: ")
    return result.stderr


# --- the command line --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["health", "--timeout", "5"],
        ["env-table", "--x"],
        ["helth"],
        ["check", "--every"],
        ["serve"],
        ["--dry-run=1"],
        ["--dry-run=true"],
        ["--dry_run"],
        ["--DRY-RUN"],
        ["--dryrun"],
    ],
)
def test_unknown_command_lines_are_usage_errors_and_start_nothing(args, tmp_path):
    env = fake_env(tmp_path, ENGINE="vllm")
    message = refused(run_launcher(args, env))
    assert "usage: python -m entrypoint" in message
    assert not (tmp_path / "record.json").exists(), "the engine must not have started"


def test_check_with_the_engine_command_but_not_its_package_is_127(tmp_path):
    env = fake_env(tmp_path, ENGINE="vllm")  # the recording `vllm` command, no vllm package
    message = refused(run_launcher(["check"], env), status=127)
    assert "the vllm Python package" in message


def test_check_with_a_partial_sglang_package_is_127_naming_the_module(tmp_path):
    """The recorders' sglang package has launch_server but no srt: found, not importable."""
    env = fake_env(tmp_path, ENGINE="sglang")
    message = refused(run_launcher(["check"], env), status=127)
    assert len(message.strip().splitlines()) == 1
    assert "ENGINE=sglang" in message and "not importable" in message
    assert "sglang.srt.server_args" in message and "No module named 'sglang.srt'" in message


def test_check_with_a_vllm_missing_its_shared_library_is_127_naming_the_error(tmp_path):
    """A CUDA wheel on a host without libcudart: the loader's OSError, in one line."""
    package = tmp_path / "site" / "vllm"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "raise OSError('libcudart.so.12: cannot open shared object file: No such file')\n"
    )
    env = fake_env(tmp_path, ENGINE="vllm")
    env["PYTHONPATH"] = str(tmp_path / "site")
    message = refused(run_launcher(["check"], env), status=127)
    assert len(message.strip().splitlines()) == 1
    assert "ENGINE=vllm" in message and "importing vllm failed with OSError" in message
    assert "libcudart.so.12" in message


SECRET_TOKEN = "hf_Zq9Sekret7XwBroken"


@pytest.mark.parametrize(
    "engine, module, code",
    [
        ("vllm", "vllm/__init__.py", "raise RuntimeError('Failed to infer device type')\n"),
        (
            "sglang",
            "sglang/srt/server_args.py",
            "import os\nraise ValueError('bad install, token ' + os.environ['HF_TOKEN'])\n",
        ),
        (
            "sglang",
            "sglang/srt/server_args.py",
            "import os\n"
            "class ServerArgs:\n"
            "    @staticmethod\n"
            "    def add_cli_args(parser):\n"
            "        raise RuntimeError('add_cli_args failed for ' + os.environ['HF_TOKEN'])\n",
        ),
    ],
    ids=["vllm import", "sglang import", "sglang parser"],
)
def test_check_with_an_engine_that_fails_to_load_is_127_in_one_blanked_line(
    tmp_path, engine, module, code
):
    """Anything but ImportError or OSError from the engine's own code was a traceback,
    exit 1, with the token in it unblanked (pass 14)."""
    path = tmp_path / "site" / module
    path.parent.mkdir(parents=True)
    for folder in [path.parent, *path.parent.parents]:
        if folder == tmp_path / "site":
            break
        (folder / "__init__.py").touch()
    path.write_text(code)
    if engine == "sglang":
        (tmp_path / "site" / "sglang" / "launch_server.py").touch()
    env = fake_env(tmp_path, ENGINE=engine, HF_TOKEN=SECRET_TOKEN)
    env["PYTHONPATH"] = str(tmp_path / "site")
    result = run_launcher(["check"], env)
    message = refused(result, status=127)
    assert len(message.strip().splitlines()) == 1, message
    assert f"ENGINE={engine}" in message and "not importable" in message
    assert "Traceback" not in result.stderr and SECRET_TOKEN not in result.stdout + result.stderr


DRY_RUN_IMPORTS = r"""
import json, os, sys
from entrypoint.cli import main
status = main(["--dry-run"], dict(os.environ))
print("GOT:" + json.dumps([status, "huggingface_hub" in sys.modules]))
"""


@pytest.mark.parametrize("endpoint", ["ftp://x", "http://[::1", "hub.example"])
def test_the_dry_run_refuses_the_hf_endpoint_the_launch_refuses(endpoint):
    """Same check as the launch (entrypoint.weights.hub_endpoint), without huggingface_hub."""
    env = clean_env({"ENGINE": "vllm", "DOWNLOAD": "1", "HF_ENDPOINT": endpoint})
    message = refused(run_launcher(["--dry-run"], env))
    assert message.startswith(f"longcat-deploy: error: HF_ENDPOINT is {endpoint!r}; accepted:")
    done = subprocess.run(
        [sys.executable, "-c", DRY_RUN_IMPORTS],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(done.stdout.split("GOT:", 1)[1]) == [2, False], done.stderr
    # A good endpoint is shown; DOWNLOAD=0 leaves the Hub to the engine, unchecked as in
    # the launch.
    good = dict(env, HF_ENDPOINT="https://hub.example/")
    assert "fetched from https://hub.example unless" in run_launcher(["--dry-run"], good).stdout
    assert run_launcher(["--dry-run"], dict(env, DOWNLOAD="0")).returncode == 0


def test_a_launch_that_preflight_refuses_leaves_no_cache_directory_behind(tmp_path):
    """HF_HOME=/nonexistent once left /nonexistent/hub behind: the writability probe
    (entrypoint.preflight.check_writable) removes the directories it made."""
    env = fake_env(
        tmp_path,
        ENGINE="vllm",
        PREFLIGHT="on",
        DOWNLOAD="1",
        GPUS_PER_NODE="4096",  # refused on any host, GPUs or not
        HF_HOME=str(tmp_path / "nonexistent" / "hf"),
    )
    result = run_launcher([], env)
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert f"HF cache: {tmp_path}/nonexistent/hf/hub is writable" in result.stderr
    assert not (tmp_path / "nonexistent").exists()
    assert not (tmp_path / "record.json").exists()


@pytest.mark.parametrize("closed", ["1", "2"])
@pytest.mark.parametrize(
    "args, extra",
    [
        (["env-table"], {}),
        (["--dry-run"], {"ENGINE": "vllm"}),
        ([], {"ENGINE": "vllm", "DRY_RUN": "1"}),
        ([], {"ENGINE": "vllm"}),  # the launch: the engine would inherit the closed stream
        (["health"], {"ENGINE": "vllm"}),
        (["--dry-run"], {"ENGINE": "bogus"}),  # an error with nowhere to say it
    ],
)
def test_a_closed_stdout_or_stderr_is_exit_74_and_starts_nothing(closed, args, extra, tmp_path):
    """A descriptor closed at start (``>&-``) makes Python set ``sys.stdout`` or
    ``sys.stderr`` to None: env-table ended in a traceback, a dry run printed nothing and
    exited 0, and the launch started the engine without its output."""
    env = fake_env(tmp_path, **extra)
    result = run_with_a_closed_descriptor(
        [sys.executable, "-m", "entrypoint", *args], closed, REPO, env=env, timeout=60
    )
    assert result.returncode == 74, (result.stdout, result.stderr)
    assert (result.stdout or "") + (result.stderr or "") == ""
    assert not (tmp_path / "record.json").exists(), "the engine must not have started"


def test_the_engine_is_found_on_the_path_it_will_run_with():
    assert vllm.find_engine({"PATH": str(FAKES / "bin")}) == str(FAKES / "bin" / "vllm")
    assert vllm.find_engine({"PATH": "/nonexistent"}) is None


# --- values that reached the engine wrongly -------------------------------------------------


@pytest.mark.parametrize(
    "name, value",
    [
        ("MASTER_IP", "010.0.0.1"),
        ("MASTER_IP", "1.2.3"),
        ("MASTER_IP", "10.0.0.1."),
        ("LWS_LEADER_ADDRESS", "010.0.0.1"),
        ("LWS_LEADER_ADDRESS", "1.2.3"),
    ],
)
def test_non_canonical_numeric_addresses_are_refused(name, value):
    env = clean_env({"ENGINE": "vllm", "PRECISION": "bf16", name: value})
    message = refused(run_launcher(["--dry-run"], env))
    assert name in message and "canonical IPv4" in message


@pytest.mark.parametrize("value", ["9" * 5000, "1" * 4096, "9" * 4400])
def test_numbers_of_thousands_of_digits_are_a_clear_refusal(value):
    message = refused(run_launcher(["--dry-run"], clean_env({"ENGINE": "vllm", "NNODES": value})))
    assert "NNODES" in message and len(message) < 400


def test_leading_zeros_of_a_small_number_are_fine():
    result = run_launcher(["--dry-run"], clean_env({"ENGINE": "vllm", "NNODES": "0" * 3000 + "1"}))
    assert result.returncode == 0, result.stderr


def test_a_huge_invalid_value_is_not_echoed_whole():
    message = refused(
        run_launcher(["--dry-run"], clean_env({"ENGINE": "vllm", "PRECISION": "x" * 100_000}))
    )
    assert "PRECISION" in message and len(message) < 400


def test_range_errors_give_both_bounds():
    message = refused(run_launcher(["--dry-run"], clean_env({"ENGINE": "vllm", "PORT": "0"})))
    assert "1..65535" in message and ".." not in message.rstrip()[-3:]


def test_a_slurm_host_with_an_underscore_is_not_blamed_on_a_port():
    env = clean_env(
        {
            "ENGINE": "vllm",
            "PRECISION": "bf16",
            "SLURM_NODEID": "0",
            "SLURM_NNODES": "2",
            "SLURM_JOB_NODELIST": "gpu_[01-02]",
        }
    )
    message = refused(run_launcher(["--dry-run"], env))
    assert "SLURM_JOB_NODELIST" in message and "port" not in message


def fake_env(tmp_path, **extra):
    env = clean_env({"PREFLIGHT": "off", "DOWNLOAD": "0", **extra})
    env["PATH"] = f"{FAKES / 'bin'}:{env['PATH']}"
    env["PYTHONPATH"] = str(FAKES / "python")
    env["FAKE_ENGINE_RECORD"] = str(tmp_path / "record.json")
    env["TMPDIR"] = str(tmp_path)
    return env


def engine_env_seen(tmp_path, **extra) -> dict:
    result = run_launcher([], fake_env(tmp_path, ENGINE="vllm", **extra))
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / "record.json").read_text())["env"]


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_engine_variable_counts_as_unset(blank, tmp_path):
    seen = engine_env_seen(
        tmp_path,
        VLLM_ENGINE_READY_TIMEOUT_S=blank,
        GLOO_SOCKET_IFNAME=blank,
        NCCL_SOCKET_IFNAME=blank,
    )
    assert seen["VLLM_ENGINE_READY_TIMEOUT_S"] == "3600"
    assert "GLOO_SOCKET_IFNAME" not in seen and "NCCL_SOCKET_IFNAME" not in seen


def test_the_engine_gets_the_interface_preflight_checked_without_spaces(tmp_path):
    seen = engine_env_seen(tmp_path, GLOO_SOCKET_IFNAME=" lo ", VLLM_ENGINE_READY_TIMEOUT_S="9 ")
    assert seen["GLOO_SOCKET_IFNAME"] == "lo" and seen["VLLM_ENGINE_READY_TIMEOUT_S"] == "9"


def test_the_launchers_choice_replaces_only_blank_values():
    env = engine_environment(
        {"A": " ", "B": "mine", "C": " x "}, {"A": "ours", "B": "ours"}, ["C", "D"]
    )
    assert env == {"A": "ours", "B": "mine", "C": "x"}


# --- health: bounded, and only this container's engine ------------------------------------


class OneShotServer:
    """A loopback TCP server that answers every connection with ``reply`` (bytes), sending
    one byte every ``every_s`` seconds when set."""

    def __init__(self, reply: bytes, every_s: float = 0.0):
        self.reply, self.every_s = reply, every_s
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                try:
                    if self.every_s:
                        for byte in self.reply:
                            if self.stop.wait(self.every_s):
                                return
                            conn.sendall(bytes([byte]))
                    else:
                        conn.sendall(self.reply)
                except OSError:
                    pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("reply", [b"garbage\r\n", b"\x00\xff", b"", b"HTTP/1.1 2000 x\r\n"])
def test_health_against_a_server_that_answers_garbage_is_unhealthy(reply):
    with OneShotServer(reply) as server:
        healthy, reason = http_health("127.0.0.1", server.port, timeout_s=5)
    assert not healthy and f"127.0.0.1:{server.port}/health" in reason


def test_health_has_one_deadline_for_the_whole_check():
    with OneShotServer(b"HTTP/1.1 200 OK\r\n", every_s=1.0) as server:
        start = time.monotonic()
        healthy, reason = http_health("127.0.0.1", server.port, timeout_s=2)
        took = time.monotonic() - start
    assert not healthy and "no answer within 2 s" in reason
    assert took < 3.5, f"took {took:.1f} s for a 2 s deadline"


def test_health_of_a_server_that_answers_200():
    with OneShotServer(b"HTTP/1.0 200 OK\r\n\r\n") as server:
        assert http_health("127.0.0.1", server.port, timeout_s=5) == (
            True,
            f"GET http://127.0.0.1:{server.port}/health answered 200",
        )


def test_headless_health_counts_only_the_engine_this_launcher_became(tmp_path):
    # Another container's (or job's) engine on the same host: argv has the marker words.
    # (Python keeps these words in its argv; `sh -c "sleep 30"` would exec sleep and drop them.)
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "vllm", "serve", "--headless"]
    )
    try:
        record = pid_file({"TMPDIR": str(tmp_path)})
        assert engine_process(record) is None, "no record: not healthy, whatever else runs"
        Path(record).write_text(f"{os.getpid()}\n")
        assert engine_process(record) is None, "a recorded process that is not the engine"
        Path(record).write_text(f"{other.pid}\n")
        # Between fork and exec the child still shows pytest's argv: poll, bounded.
        deadline = time.monotonic() + 10
        while engine_process(record) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine_process(record) == other.pid
    finally:
        other.kill()
        other.wait()
    assert engine_process(record) is None, "the engine exited"


def test_the_launcher_records_the_headless_engine_before_the_exec(tmp_path):
    env = fake_env(tmp_path, ENGINE="vllm", PRECISION="bf16", NODE_RANK="1", MASTER_IP="127.0.0.1")
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoint"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.communicate(timeout=60)
    assert process.returncode == 0
    assert (tmp_path / "longcat-deploy-engine.pid").read_text() == f"{process.pid}\n"


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_a_pid_record_that_is_no_file_is_no_record_at_once(tmp_path, kind):
    """A FIFO at the record held health past a minute; a link to /dev/zero ended in a
    MemoryError traceback (pass 13)."""
    import time

    record = tmp_path / "longcat-deploy-engine.pid"
    if kind == "fifo":
        os.mkfifo(record)
    else:
        record.symlink_to("/dev/zero")
    started = time.monotonic()
    assert engine_process(str(record)) is None
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("kind", ["fifo", "link to a file of ours"])
def test_the_pid_record_replaces_what_stands_there_never_writing_through_it(tmp_path, kind):
    """The launch hung on a FIFO there, and wrote its PID through a link into the file
    it names (pass 13: /tmp is shared on a workstation)."""
    from entrypoint.health import record_engine_pid

    record = tmp_path / "longcat-deploy-engine.pid"
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    if kind == "fifo":
        os.mkfifo(record)
    else:
        record.symlink_to(victim)
    record_engine_pid(str(record))
    assert not record.is_symlink() and record.read_text() == f"{os.getpid()}\n"
    assert victim.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([record.name, victim.name])


def test_an_unreadable_pid_record_is_unhealthy_not_a_traceback(tmp_path):
    record = tmp_path / "record.pid"
    record.write_text("not a number")
    assert engine_process(str(record)) is None
    record.chmod(stat.S_IWUSR)
    assert engine_process(str(tmp_path / "absent.pid")) is None


def test_an_hf_home_that_is_a_file_is_named_not_blamed_on_the_network(tmp_path):
    """huggingface_hub reads its stored token under HF_HOME before any request: a file
    there was reported as a network failure ("Check the network path")."""
    home = tmp_path / "not-a-directory"
    home.write_text("")
    env = clean_env(
        {
            "ENGINE": "vllm",
            "HF_HOME": str(home),
            "HF_ENDPOINT": "http://127.0.0.1:9",
            "DOWNLOAD_STALL_S": "2",
        }
    )
    result = run_launcher(["prefetch"], env)
    assert result.returncode == 4, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert f"Not a directory: {home}/token" in message and "HF_HOME" in message
    assert "Check the network path" not in message and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "variable, value, accepted",
    [
        # huggingface_hub reads anything but 1/on/yes/true as off (constants.py, _is_true).
        ("HF_HUB_OFFLINE", "enabled", "1, true, yes or on; 0, false, no or off"),
        # NCCL reads an integer with strtoll: "1e3" is 1, "yes" is 0.
        ("NCCL_IB_DISABLE", "1e3", "0 or 1"),
        ("NCCL_IB_DISABLE", "yes", "0 or 1"),
    ],
)
def test_a_library_variable_its_library_would_misread_is_refused(variable, value, accepted):
    from entrypoint.errors import ConfigError
    from entrypoint.settings import load_settings

    with pytest.raises(ConfigError) as error:
        load_settings({"ENGINE": "vllm", variable: value})
    assert str(error.value).startswith(f"{variable} is {value!r}; accepted: {accepted}")
    for fine in (" On ", "0", ""):
        if variable == "HF_HUB_OFFLINE" or fine.strip() in ("0", ""):
            load_settings({"ENGINE": "vllm", variable: fine})


def test_a_slurm_host_list_is_expanded_only_as_far_as_its_first_host():
    """python-hostlist caps each part at 100,000 hosts, not the list: 130 such parts took
    12 s and 1.8 GB; a range of 4,400 digits ended in int()'s ValueError."""
    import time

    from entrypoint.errors import ConfigError
    from entrypoint.platforms import first_host

    started = time.process_time()
    assert first_host("SLURM_JOB_NODELIST", ",".join(["gpu[7-99999]"] * 130)) == "gpu7"
    assert time.process_time() - started < 2
    assert first_host("SLURM_JOB_NODELIST", "gpu[01-04,07],cpu3") == "gpu01"
    with pytest.raises(ConfigError) as refused:
        first_host("SLURM_JOB_NODELIST", "n[0-" + "9" * 4400 + "]")
    assert str(refused.value).startswith("SLURM_JOB_NODELIST is ")
    with pytest.raises(ConfigError):
        first_host("SLURM_JOB_NODELIST", "n" * 70_000)
