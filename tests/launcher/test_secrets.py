"""Secrets are never printed: not in the plan, the command, log lines or error messages.

In-process (``entrypoint.cli.main`` with a plain environment) for the properties, and
through the real launcher process for the cases users hit.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from urllib.parse import quote as percent

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint import output
from entrypoint.cli import main
from entrypoint.errors import ConfigError
from entrypoint.output import command_line, configure, is_secret_flag, redact, redact_argv
from entrypoint.settings import SECRET_VARIABLES, VARIABLES
from entrypoint.values import SECRET_ACCEPTED
from tests.launcher.support import REPO, clean_env, run_launcher

SECRET = "hf_Sup3rSecretT0ken9"


@pytest.fixture(autouse=True)
def no_configured_secrets():
    """Each test starts and ends with no secret configured (output keeps module state)."""
    configure([])
    yield
    configure([])


def run_main(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """``main`` in-process; returns (exit status, stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(args, env)
    return status, out.getvalue() + err.getvalue()


# --- the redaction function -----------------------------------------------------------------


@pytest.mark.parametrize(
    "secret", [SECRET, "k'ey\\with\"quotes", "ключ-ü-geheim", "a b\tc d e f", "pa ss/w?rd&x=1"]
)
def test_every_spelling_of_a_configured_secret_is_blanked(secret):
    configure([secret])
    spellings = {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        shlex.quote(secret),
        percent(secret, safe=""),
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    for spelling in spellings:
        assert secret not in redact(f"before {spelling} after")
        assert redact(f"x{spelling}y") == "x***y", spelling


def test_a_secret_with_a_trailing_newline_is_blanked_with_and_without_it():
    configure([SECRET + "\n"])
    assert redact(f"Bearer {SECRET}\\n and {SECRET}") == "Bearer *** and ***"


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://user:PASSWORD@hub.example/x", "https://user:***@hub.example/x"),
        ("http://TOKEN@[::1]:8080", "http://***@[::1]:8080"),
        ("see HTTPS://a:b@c and ftp://d:e@f.", "see HTTPS://a:***@c and ftp://d:***@f."),
        ("no url user@example.com", "no url user@example.com"),
    ],
)
def test_url_passwords_are_blanked_and_user_names_kept(url, shown):
    assert redact(url) == shown


@pytest.mark.parametrize(
    "text, shown",
    [
        # No scheme: HTTP clients still send user:password@host to host.
        ("fetched from u:ShortPw_123456@host now", "fetched from u:***@host now"),
        ("HF_ENDPOINT is 'u:ShortPw_123456@host:99'", "HF_ENDPOINT is 'u:***@host:99'"),
        ("u:p4ssw0rd@[::1]:9", "u:***@[::1]:9"),
        # An unencoded "@" or "#" in the password: the user info ends at the last "@"
        # (urllib.parse.urlsplit: netloc.rpartition("@")).
        ("http://alice:Pw@Super#Secret99@127.0.0.1:9/x", "http://alice:***@127.0.0.1:9/x"),
        ("a@b:Pw@Super99@host", "a@b:***@host"),
        # A ":" after the port: a message that quotes the address ("at ADDR: reason"), or
        # the docker SDK quoting a DOCKER_HOST it refuses (docker/utils/utils.py,
        # parse_host: "Invalid bind address protocol: ADDR").
        ("at u:ShortPw_123456@127.0.0.1:1: refused", "at u:***@127.0.0.1:1: refused"),
        ("protocol: u:ShortPw_123456@127.0.0.1:2375:x", "protocol: u:***@127.0.0.1:2375:x"),
        # Not credentials: an image reference's tag before its digest, an e-mail address,
        # git's scp-like syntax.
        ("longcat:vllm-0.33.0@sha256:0123abcd", "longcat:vllm-0.33.0@sha256:0123abcd"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
    ],
)
def test_url_userinfo_without_a_scheme_or_with_an_at_sign_is_blanked(text, shown):
    assert redact(text) == shown


@pytest.mark.parametrize(
    "name", ["token", "access_token", "api_key", "key", "password", "sig", "X-Amz-Signature"]
)
def test_query_string_credentials_are_blanked(name):
    url = f"http://127.0.0.1:9/p?a=1&{name}=ShortPw_123456&b=2#frag"
    assert redact(url) == f"http://127.0.0.1:9/p?a=1&{name}=***&b=2#frag"
    assert redact(f"see http://h/#{name}=ShortPw_123456 x") == f"see http://h/#{name}=*** x"
    assert redact("http://h/?Key-Pair-Id=K1&id=7") == "http://h/?Key-Pair-Id=K1&id=7"


@settings(max_examples=200, deadline=None)
@given(
    password=st.text(
        st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="/"),
        min_size=8,
        max_size=40,
    ),
    scheme=st.sampled_from(["https://", "ftp://", ""]),
)
def test_no_url_password_survives_redaction(password, scheme):
    """Any password without "/" or whitespace (which would end the URL's authority) is
    blanked whole, with or without a scheme, unencoded "@", "#", "?" and quotes included."""
    text = f"x {scheme}user:{password}@hub.example:8080/p y"
    assert redact(text) == f"x {scheme}user:***@hub.example:8080/p y"


@pytest.mark.parametrize(
    "value",
    [
        "https://firstname.lastname%40subdivision.example.com:"
        "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567@hub-mirror.example.com:99999",
        "ftp://u:" + "Px9" * 40 + "@host",
        "x" * 70 + "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567",
    ],
)
def test_a_shortened_value_is_redacted_before_it_is_cut(value):
    """A cut at SHOWN_VALUE_CHARS can drop the "@" after a URL's password or the end of a
    configured secret; the message must hold no part of either."""
    from entrypoint.errors import ConfigError, shorten

    configure(["hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567"])
    for text in (shorten(value), ConfigError("HF_ENDPOINT", value, "a URL").message()):
        assert "aBcDeFgH" not in text and "Px9Px9" not in text, text
        assert "***" in text


def test_a_long_url_password_in_hf_endpoint_is_never_printed():
    token = "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567"
    for endpoint in (
        f"https://first.last%40sub.example.com:{token}@hub-mirror.example.com:99999",
        "ftp://u:" + "Px9" * 40 + "@host",
        "u:ShortPw_123456@host",
        "http://u:pass/word99@host",
    ):
        env = clean_env({"HF_TOKEN": token, "HF_ENDPOINT": endpoint, "HF_HOME": "/nonexistent"})
        result = run_launcher(["prefetch"], env)
        printed = result.stdout + result.stderr
        assert result.returncode == 2, printed
        assert "HF_ENDPOINT is refused (value not shown" in printed
        for part in ("aBcDeFgH", "Px9Px9", "ShortPw", "word99"):
            assert part not in printed, printed


def test_scheme_less_url_password_is_refused_unshown_in_the_dry_run():
    # The dry run checks HF_ENDPOINT as the launch does (weights.hub_endpoint).
    result = dry_run({"ENGINE": "vllm", "HF_ENDPOINT": "u:ShortPw_123456@host"})
    assert result.returncode == 2
    assert "HF_ENDPOINT is refused (value not shown" in result.stderr
    assert "ShortPw_123456" not in result.stdout + result.stderr


@pytest.mark.parametrize("secret", ["Pa/Ss:W@rd+Key=1", "AbC%2Fdef/GHI", "K!e*y(S)e'c"])
def test_percent_encoded_secrets_are_blanked_with_either_case_of_hex_digits(secret):
    configure([secret])
    upper = percent(secret, safe="")
    lower = _hex_digits(upper, lambda i: True)
    mixed = _hex_digits(upper, lambda i: i % 2 == 1)
    assert upper != lower
    for spelling in (upper, lower, mixed, percent(secret), _hex_digits(percent(secret), bool)):
        assert redact(f"a {spelling} b") == "a *** b", spelling


@given(
    secret=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=8, max_size=24
    ),
    encode=st.lists(st.booleans(), min_size=24, max_size=24),
    upper=st.lists(st.booleans(), min_size=24, max_size=24),
)
def test_a_secret_with_any_of_its_characters_percent_encoded_in_any_case_is_blanked(
    secret, encode, upper
):
    """A server may encode any character (RFC 3986, section 2.1: "%68" is "h") and echo
    either case: a mirror redirecting to /x?t=%68%66%5F... printed the token (pass 11)."""
    configure([secret])
    spelled = "".join(
        percent(char, safe="") if encode[i] and percent(char, safe="") != char else char
        for i, char in enumerate(secret)
    )
    # Case changed on ASCII letters only: Unicode's may change length (ß, SS).
    spelled = "".join(
        (c.upper() if upper[i % 24] else c.lower()) if c.isascii() else c
        for i, c in enumerate(spelled)
    )
    assert redact(f"http://h/x?t={spelled} end") == "http://h/x?t=*** end", spelled


@pytest.mark.parametrize(
    "spelled",
    [
        "hf_sup3rsecrett0ken9",
        "HF_SUP3RSECRETT0KEN9",
        "hf%5FSup3rSecretT0ken9",
        "%68%66" + SECRET[2:],
    ],
)
def test_a_token_in_another_case_or_partly_percent_encoded_is_never_printed(spelled):
    """The dry run printed HF_ENDPOINT=http://h/t/%68%66%5F... whole (pass 11)."""
    env = clean_env(
        {"ENGINE": "vllm", "HF_TOKEN": SECRET, "HF_ENDPOINT": f"http://127.0.0.1:9/t/{spelled}"}
    )
    status, out = run_main(["--dry-run"], env)
    assert status == 0, out
    assert "http://127.0.0.1:9/t/***" in out
    assert spelled.lower() not in out.lower()


def _hex_digits(encoded: str, lower) -> str:
    """``encoded`` with the two hex digits of escape number i in lower case where
    ``lower(i)``; every "%" of a percent-encoded text starts an escape."""
    head, *escapes = encoded.split("%")
    return head + "".join(
        "%" + (e[:2].lower() if lower(i) else e[:2]) + e[2:] for i, e in enumerate(escapes)
    )


@pytest.mark.parametrize(
    "flag",
    [
        "--api-key",
        "--api_key",
        "--API-KEY",
        "--api-ke",
        "--api",
        "--hf-token",
        "--hf_token",
        "--hf-tok",
    ],
)
def test_secret_flags_in_every_spelling_the_parsers_accept(flag):
    assert is_secret_flag(flag) and is_secret_flag(f"{flag}=x")
    assert redact_argv(["vllm", flag, "sk-1"]) == ["vllm", flag, "***"]
    assert redact_argv([f"{flag}=sk-2"]) == [f"{flag}=***"]


@pytest.mark.parametrize("flag", ["--port", "--host", "-a", "--a", "--hf-config-path-x"])
def test_other_flags_keep_their_values(flag):
    assert not is_secret_flag(flag)
    assert redact_argv([flag, "v"]) == [flag, "v"]


# --- through the launcher --------------------------------------------------------------------


def dry_run(env: dict[str, str], *args: str):
    return run_launcher(["--dry-run", *args], clean_env(env))


@pytest.mark.parametrize(
    "token", [SECRET + "\n", SECRET + " ", " " + SECRET, "hf_a\x07bcdefgh", "short12"]
)
def test_a_token_with_whitespace_or_control_characters_is_refused_unshown(token):
    result = dry_run({"ENGINE": "vllm", "HF_TOKEN": token})
    assert result.returncode == 2 and result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "HF_TOKEN is refused (value not shown" in message
    assert token.strip() not in message and "Traceback" not in message


@pytest.mark.parametrize("name", ["HF_TOKEN", "API_KEY", "HUGGING_FACE_HUB_TOKEN"])
@pytest.mark.parametrize(
    "secret",
    ["hf_aBcDeFgH\u00efJkLmNoP", "sk-\u043a\u043b\u044e\u0447-12345678", "hf_abc\u00a0defgh1"],
)
def test_a_secret_outside_ascii_is_refused_unshown(name, secret):
    """HTTP headers carry ASCII only: such a token would fail later as a misleading
    UnicodeEncodeError quoting a character of it and its position."""
    for args in (["--dry-run"], ["prefetch"]):
        result = run_launcher(args, clean_env({"ENGINE": "vllm", name: secret}))
        message = result.stderr.strip()
        assert result.returncode == 2 and result.stdout == "", message
        assert f"{name} is refused (value not shown" in message and "ASCII" in message
        assert len(message.splitlines()) == 1 and "Traceback" not in message
        assert not any(c in message for c in secret if not c.isascii())
        assert secret[:6] not in message


def test_unbalanced_quote_in_extra_args_does_not_echo_the_flags():
    result = dry_run({"ENGINE": "vllm", "EXTRA_ARGS": "--api-key sk-SECRET '"})
    assert result.returncode == 2
    assert "EXTRA_ARGS is refused (value not shown" in result.stderr
    assert "sk-SECRET" not in result.stderr + result.stdout


def test_url_password_of_hf_endpoint_is_never_printed():
    result = dry_run({"ENGINE": "vllm", "HF_ENDPOINT": "https://bob:Pw0rdLeak42@hub.example"})
    assert result.returncode == 0, result.stderr
    assert "https://bob:***@hub.example" in result.stdout
    assert "Pw0rdLeak42" not in result.stdout + result.stderr


@pytest.mark.parametrize("extra", [f"--lora-modules 'x={SECRET}'", f"--lora-modules=x={SECRET}"])
def test_the_token_reused_anywhere_in_extra_args_is_refused_unshown(extra):
    """Printed as ***, it would still reach the engine's argv, which ps shows."""
    result = dry_run({"ENGINE": "vllm", "HF_TOKEN": SECRET, "EXTRA_ARGS": extra})
    assert result.returncode == 2 and result.stdout == ""
    message = result.stderr.strip()
    assert message == (
        "longcat-deploy: error: EXTRA_ARGS: holds the value of HF_TOKEN, and every process on "
        "the host can read an engine's command line (ps, /proc/PID/cmdline): it is refused. "
        "Give a secret only where the launcher takes it (HF_TOKEN, API_KEY, API_KEY_FILE, a "
        "password in its own URL); it reaches the engine through its environment or a private "
        "file."
    )
    assert SECRET not in message


@pytest.mark.parametrize(
    "extra",
    [
        f"--api_key {SECRET}",
        f"--api-ke {SECRET}",
        f"--api-key={SECRET}",
        f"--served-model-name {SECRET}",
    ],
)
def test_a_flag_the_launcher_owns_is_refused_without_its_value(extra):
    result = dry_run({"ENGINE": "vllm", "HF_TOKEN": SECRET, "EXTRA_ARGS": extra})
    assert result.returncode == 2 and result.stdout == ""
    assert SECRET not in result.stderr and "EXTRA_ARGS" in result.stderr


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@pytest.mark.parametrize(
    "flag, alternative",
    [
        ("--hf-token", "Set HF_TOKEN"),
        ("--hf_token", "Set HF_TOKEN"),
        ("--hf-tok", "Set HF_TOKEN"),
        ("--HF-TOKEN", "Set HF_TOKEN"),
        ("--admin-api-key", "cannot be passed safely on the command line"),
        ("--admin_api", "cannot be passed safely on the command line"),
        ("--ssl-keyfile-password", "cannot be passed safely on the command line"),
        ("--ssl-keyfile-p", "cannot be passed safely on the command line"),
        ("--api-key", "API_KEY"),
    ],
)
@pytest.mark.parametrize("form", ["{flag} {s}", "{flag}={s}"])
@pytest.mark.parametrize("dry", [True, False])
def test_a_secret_flag_is_refused_with_the_safe_alternative(engine, flag, alternative, form, dry):
    """A secret flag is never put on an engine's command line (readable in ps and
    /proc/PID/cmdline): refused with exit 2, in the dry run too, from EXTRA_ARGS and from
    the arguments after the image name, naming the safe way; its value never shown."""
    args = form.format(flag=flag, s=SECRET).split()
    env = {"ENGINE": engine, "PATH": "/nonexistent"}
    for where, env_args, argv in (
        ("EXTRA_ARGS", {"EXTRA_ARGS": " ".join(args)}, []),
        ("the arguments after the image name", {}, ["--", *args]),
    ):
        status, printed = run_main(["--dry-run"] * dry + argv, {**env, **env_args})
        assert status == 2, printed
        assert printed.startswith(f"longcat-deploy: error: {where}: {flag}"), printed
        assert alternative in printed and SECRET not in printed
        assert len(printed.strip().splitlines()) == 1


@settings(max_examples=300, deadline=None)
@given(
    flag=st.sampled_from(output.SECRET_FLAGS),
    cut=st.integers(min_value=4, max_value=30),
    underscores=st.booleans(),
    upper=st.booleans(),
    engine=st.sampled_from(["vllm", "sglang"]),
)
def test_every_spelling_of_a_secret_flag_is_refused(flag, cut, underscores, upper, engine):
    """Every abbreviation (argparse's prefix matching), underscore and case spelling of a
    secret flag is refused, but for the engine's own options that only begin like one."""
    from entrypoint.engines import engine_module
    from entrypoint.errors import ConfigError
    from entrypoint.plan import resolve_plan
    from entrypoint.settings import load_settings

    given = flag[:cut]
    if underscores:
        given = "--" + given[2:].replace("-", "_")
    if upper:
        given = given.upper()
    env = {"ENGINE": engine, "EXTRA_ARGS": f"{given} {SECRET}"}
    if given.replace("_", "-") in engine_module(engine).NOT_SECRET_OPTIONS:  # vLLM's dashes
        assert resolve_plan(load_settings(env)).extra_args == (given, SECRET)
        return
    with pytest.raises(ConfigError) as info:
        resolve_plan(load_settings(env))
    assert info.value.exit_status == 2 and SECRET not in info.value.message()


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@pytest.mark.parametrize("extra", ["--ssl-keyfile /k.pem", "--ssl-keyfile=/k.pem"])
def test_an_option_that_only_begins_like_a_secret_flag_passes(engine, extra):
    result = dry_run({"ENGINE": engine, "EXTRA_ARGS": extra})
    assert result.returncode == 0, result.stderr
    assert "--ssl-keyfile" in result.stdout.splitlines()[-1]


def test_every_secret_flag_has_a_safe_alternative_sentence():
    from entrypoint.plan import SECRET_FLAG_ALTERNATIVES

    assert set(SECRET_FLAG_ALTERNATIVES) == set(output.SECRET_FLAGS)


# --- properties ----------------------------------------------------------------------------

# Mostly printable ASCII, which settings accepts as a secret; some wider text, which it
# refuses unshown.
tokens = st.one_of(
    st.text(
        st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="'\""),
        min_size=12,
        max_size=40,
    ),
    st.text(
        st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_characters="'\""),
        min_size=12,
        max_size=40,
    ),
)
ORDINARY = [v.name for v in VARIABLES if not v.secret]


@settings(max_examples=150, deadline=None)
@given(
    secret=tokens,
    name=st.sampled_from(SECRET_VARIABLES),
    planted=st.sampled_from(ORDINARY),
    shape=st.sampled_from(
        ["{s}", "--api-key {s}", "--x={s}", "https://u:{s}@h.example", "./{s}", "{s}.example"]
    ),
    engine=st.sampled_from(["sglang", "vllm"]),
    args=st.sampled_from([["--dry-run"], ["--dry-run", "--api-key", "{s}"]]),
)
def test_a_secret_planted_in_any_variable_never_appears_in_any_output(
    secret, name, planted, shape, engine, args
):
    env = {"ENGINE": engine, name: secret, planted: shape.format(s=secret), "PATH": "/nonexistent"}
    status, printed = run_main([a.format(s=secret) for a in args], env)
    assert status in (0, 1, 2), printed
    assert "Traceback" not in printed
    if f"{name} {OWN_TEXT.format(n=len(secret))}" in printed:
        # Refused as part of the launcher's own text: printed unblanked there, where it
        # tells nothing (blanked, it would). Nothing else may be printed.
        assert printed == f"longcat-deploy: error: {name} {OWN_TEXT.format(n=len(secret))}\n"
        return
    assert secret not in printed, (status, printed)
    if status == 0:  # accepted: then the engine's command line does not hold it either
        from entrypoint.engines import build_argv
        from entrypoint.plan import resolve_plan
        from entrypoint.settings import load_settings

        argv = build_argv(resolve_plan(load_settings(env)))
        assert not any(secret.strip() in word for word in argv), argv


DOCUMENTED = {
    (),
    ("check",),
    ("check", "--all"),
    ("health",),
    ("env-table",),
    ("-h",),
    ("--help",),
    ("prefetch",),
    ("prefetch", "--verify"),
}
words = st.sampled_from(
    [
        "check",
        "health",
        "env-table",
        "helth",
        "chek",
        "--all",
        "--x",
        "--timeout",
        "5",
        "--dry-run",
        "--dry_run",
        "--dry-run=1",
        "--DRY-RUN",
        "-dry-run",
        "--dryrun",
        "--",
        "--port",
        "vllm",
        "serve",
        "-h",
        "--help",
        "prefetch",
        "--verify",
    ]
)


@settings(max_examples=300, deadline=None)
@given(argv=st.lists(words, max_size=4))
def test_no_command_line_but_the_documented_ones_reaches_the_launch(argv):
    launched = []
    with pytest.MonkeyPatch.context() as patch:  # undone after each example
        patch.setattr(
            "entrypoint.launch.launch", lambda env, args, dry_run: launched.append(args) or 0
        )
        # A prefetch would fetch for real: the parse is what is under test here.
        patch.setattr("entrypoint.prefetch.run_prefetch", lambda env, verify: 0)
        status, printed = run_main(argv, {"ENGINE": "vllm", "PATH": "/nonexistent"})
    assert "Traceback" not in printed
    cut = argv.index("--") if "--" in argv else len(argv)
    before = argv[:cut]
    if launched:
        # Only engine flags (and --dry-run) before "--"; no other spelling of --dry-run.
        assert not before or before[0].startswith("-"), argv
        assert tuple(before[:1]) not in {("check",), ("health",), ("env-table",), ("prefetch",)}
        assert not any(
            w.lower().lstrip("-").replace("_", "-").startswith("dry") and w != "--dry-run"
            for w in before
        ), argv
    elif tuple(argv) not in DOCUMENTED and status != 1:
        assert status == 2, (argv, printed)


def test_output_module_state_is_reset_by_configure():
    configure(["abcdefgh"])
    assert output.redact("xabcdefghx") == "x***x"
    configure([])
    assert output.redact("xabcdefghx") == "xabcdefghx"
    assert command_line(["a", "--api-key", "k"]) == "a --api-key '***'"


# --- found by the second adversarial pass -----------------------------------------------------


@pytest.mark.parametrize("variable", ["API_KEY", "HF_TOKEN"])
def test_a_secret_with_a_quote_reused_inside_a_flag_is_refused_unshown(variable):
    secret = "ab'cdefgh"
    result = dry_run({"ENGINE": "vllm", variable: secret}, "--", "--lora-modules", f"x={secret}")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(
        f"longcat-deploy: error: the arguments after the image name: holds the value of {variable},"
    )
    assert "cdefgh" not in result.stderr


def test_escaped_spellings_of_a_quote_inside_larger_text_are_blanked():
    secret = "ab'cd\"efgh\\1"
    configure([secret])
    for larger in ("x=" + secret, "'\"" + secret):
        for text in (repr(larger), json.dumps(larger), shlex.quote(larger)):
            assert "efgh" not in redact(text), text


@pytest.mark.parametrize(
    "text",
    [
        "X-Error-Message: Authorization: Basic Ym9iOlBhNTV3MHJk, request refused",
        "{'authorization': 'Bearer hf_StoredTok3nValue', 'accept': '*/*'}",
        "Proxy-Authorization: Basic Y2Fyb2w6UHIweHlQdzk=",
        '"Authorization": "token ghp_abcdefgh12345"',
    ],
)
def test_authorization_header_values_are_blanked_whatever_the_scheme(text):
    shown = redact(text)
    for credential in ("Ym9iOlBhNTV3MHJk", "hf_StoredTok3nValue", "Y2Fyb2w6UHIweHlQdzk=", "ghp_"):
        assert credential not in shown
    assert "***" in shown


def test_the_stored_hub_token_is_a_secret_too(tmp_path):
    """huggingface_hub sends the token `hf auth login` stored when HF_TOKEN is unset
    (constants.HF_TOKEN_PATH): it is blanked like HF_TOKEN."""
    from entrypoint.settings import secret_values, stored_hub_token

    (tmp_path / "token").write_text("hf_StoredTok3nValue\n")
    assert stored_hub_token({"HF_HOME": str(tmp_path)}) == "hf_StoredTok3nValue"
    assert stored_hub_token({"HF_TOKEN_PATH": str(tmp_path / "token")}) == "hf_StoredTok3nValue"
    assert stored_hub_token({"HF_HOME": str(tmp_path / "none")}) is None
    configure(secret_values({"HF_HOME": str(tmp_path)}))
    assert redact("sent hf_StoredTok3nValue") == "sent ***"


def test_a_space_in_hf_endpoint_is_refused_unshown():
    result = dry_run({"ENGINE": "vllm", "HF_ENDPOINT": "http://alice:S3cr3t pw@127.0.0.1:9"})
    assert result.returncode == 2
    assert "HF_ENDPOINT is refused (value not shown" in result.stderr
    assert "S3cr3t" not in result.stdout + result.stderr


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_that_cannot_be_written_is_exit_74_without_a_traceback(stream):
    env = clean_env({"ENGINE": "vllm" if stream == "stdout" else "bogus"})
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "entrypoint", "--dry-run"],
            env=env,
            cwd=REPO,
            stdout=full if stream == "stdout" else subprocess.PIPE,
            stderr=full if stream == "stderr" else subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert result.returncode == 74
    assert "Traceback" not in (result.stderr or "") + (result.stdout or "")


# --- found by the third adversarial pass ------------------------------------------------------


@pytest.mark.parametrize(
    "text, shown",
    [
        ("--foo=u:PwSecret4321@10.0.0.1:80&y", "--foo=u:***@10.0.0.1:80&y"),
        ("--foo u:PwSecret4321@host|x", "--foo u:***@host|x"),
        ("--foo u:PwSecret4321@host}", "--foo u:***@host}"),
        ("name:tag@sha256:abcdef", "name:tag@sha256:abcdef"),  # an image reference stays
        ("{'authorization': ['Basic PwSecret4321']}", "{'authorization': ['Basic ***']}"),
        ("Authorization&quot;: &quot;Basic PwSecret4321&quot;", None),
        ("'https://h/x?token=PwSecret4321' next", "'https://h/x?token=***' next"),
        ("(Authorization: Bearer PwSecret4321) cannot", "(Authorization: Bearer ***) cannot"),
    ],
)
def test_credentials_whatever_follows_them_are_blanked_and_quotes_kept(text, shown):
    result = redact(text)
    assert "PwSecret4321" not in result
    if shown is not None:
        assert result == shown


# --- a secret reused on the engine's command line (fourth pass) --------------------------------


@pytest.mark.parametrize(
    "engine, extra, where",
    [
        ("vllm", {"SERVED_MODEL_NAME": f"chat-{SECRET}"}, "SERVED_MODEL_NAME"),
        ("sglang", {"SERVED_MODEL_NAME": SECRET}, "SERVED_MODEL_NAME"),
        ("vllm", {"MODEL": f"/models/{SECRET}"}, "MODEL"),
        ("vllm", {"EXTRA_ARGS": f"--lora-modules x=https://hub.example/{SECRET}"}, "EXTRA_ARGS"),
        ("sglang", {"EXTRA_ARGS": f"--lora-paths a={SECRET}"}, "EXTRA_ARGS"),
    ],
)
@pytest.mark.parametrize("secret_variable", ["HF_TOKEN", "API_KEY", "HUGGING_FACE_HUB_TOKEN"])
@pytest.mark.parametrize("command", [["--dry-run"], ["check"]])
def test_a_secret_in_any_variable_that_reaches_the_argv_is_refused(
    engine, extra, where, secret_variable, command
):
    env = {"ENGINE": engine, secret_variable: SECRET, **extra}
    status, printed = run_main(command, env)
    assert status == 2
    assert printed == (
        f"longcat-deploy: error: {where}: holds the value of {secret_variable}, and every "
        "process on the host can read an engine's command line (ps, /proc/PID/cmdline): it "
        "is refused. Give a secret only where the launcher takes it (HF_TOKEN, API_KEY, "
        "API_KEY_FILE, a password in its own URL); it reaches the engine through its "
        "environment or a private file.\n"
    )


def test_a_percent_encoded_secret_in_a_url_is_refused():
    """A server decodes %-escapes, so the encoded secret is the secret (RFC 3986, 2.1)."""
    secret = "hf_p@ss/w0rd!x"
    extra = f"--lora-modules x=https://u:{percent(secret, safe='').lower()}@hub.example/a"
    status, printed = run_main(
        ["--dry-run"], {"ENGINE": "vllm", "HF_TOKEN": secret, "EXTRA_ARGS": extra}
    )
    assert status == 2 and "EXTRA_ARGS: holds the value of HF_TOKEN" in printed
    assert "w0rd" not in printed


def test_the_stored_hub_token_and_a_key_file_are_looked_for_too(tmp_path):
    """Neither is a variable's value: the stored token (``hf auth login``) is read from
    HF_HOME, the key from API_KEY_FILE, before anything is downloaded."""
    (tmp_path / "token").write_text("hf_StoredTok3nValue\n")
    status, printed = run_main(
        ["--dry-run", "--", "--lora-modules", "x=hf_StoredTok3nValue"],
        {"ENGINE": "vllm", "HF_HOME": str(tmp_path)},
    )
    assert status == 2
    assert printed.startswith(
        "longcat-deploy: error: the arguments after the image name: holds the value of the "
        "stored Hub token,"
    )
    key_file = tmp_path / "key"
    key_file.write_text("k3y-from-a-file\n")
    result = run_launcher(
        [],
        clean_env(
            {
                "ENGINE": "vllm",
                "API_KEY_FILE": str(key_file),
                "SERVED_MODEL_NAME": "chat-k3y-from-a-file",
                "DOWNLOAD": "0",
                "PREFLIGHT": "off",
            }
        ),
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "longcat-deploy: error: SERVED_MODEL_NAME: holds the value of the key in API_KEY_FILE,"
    )
    assert "k3y-from" not in result.stderr + result.stdout


OWN_TEXT = (
    "is refused (value not shown, {n} characters); accepted: "
    + SECRET_ACCEPTED
    + ". It is a word of the launcher's plan or messages, where the *** that "
    "blanks it would show it: choose a key that is not an ordinary word (openssl rand -hex 32)."
)


@pytest.mark.parametrize(
    "key",
    [
        "flashinfer",
        "LongCat-Flash",
        "trust-remote-code",
        # pass 11: each was accepted, and the plan showed "ENGINE vllm ***" and the like
        "environment",
        "Prometheus",
        "preflight",
        "GPUS_PER_NODE",
        "tool_calls",
        "ironment",  # a part of a word: "env***"
        # words of the refusal itself: blanked there, they told the key
        "launcher",
        "characters",
    ],
)
@pytest.mark.parametrize("command", [["--dry-run"], ["check"], ["prefetch"], ["health"]])
def test_a_key_that_is_the_launchers_own_text_is_refused_as_such(key, command):
    """The user gave the key where it belongs; the fault is that it is an ordinary word,
    which the *** that blanks it everywhere would give away."""
    status, printed = run_main(command, {"ENGINE": "vllm", "API_KEY": key})
    assert status == 2, printed
    assert printed == f"longcat-deploy: error: API_KEY {OWN_TEXT.format(n=len(key))}\n"


def test_every_secret_that_is_the_launchers_own_text_is_refused(tmp_path):
    """HF_TOKEN, the stored token, a URL's password and the key in API_KEY_FILE too."""
    key_file = tmp_path / "key"
    key_file.write_text("Environment\n")
    (tmp_path / "token").write_text("Prometheus")
    for env, name in [
        ({"HF_TOKEN": "preflight"}, "HF_TOKEN"),
        ({"HF_HOME": str(tmp_path)}, "the stored Hub token"),
        ({"HTTPS_PROXY": "http://u:parallel@proxy:3128"}, "the password in HTTPS_PROXY"),
        ({"API_KEY_FILE": str(key_file)}, f"the key in API_KEY_FILE={key_file}"),
    ]:
        status, printed = run_main(["--dry-run"], {"ENGINE": "vllm", **env})
        assert status == 2, (name, printed)
        assert printed.startswith(f"longcat-deploy: error: {name} is refused"), printed
        assert "part of the launcher's own text" in printed
        assert "***" not in printed.replace("the *** that", "")


def test_a_random_key_is_not_the_launchers_own_text():
    status, printed = run_main(["--dry-run"], {"ENGINE": "vllm", "API_KEY": "sk-Zq9Sekret7Xw"})
    assert status == 0, printed


def test_only_the_launchers_own_words_holding_a_secret_is_said_so():
    from entrypoint.launch import refuse_secrets_on_command_line

    with pytest.raises(ConfigError) as refused:
        refuse_secrets_on_command_line(
            ["vllm", "serve", "--attention-backend", "flashinfer"], {"API_KEY": "flashinf"}, {}
        )
    assert refused.value.exit_status == 2
    assert str(refused.value).startswith("API_KEY is text the launcher itself puts")
    refuse_secrets_on_command_line(["vllm", "serve", "m"], {"API_KEY": "flashinf"}, {})


ESCAPED = "".join(f"\\u{ord(c):04x}" for c in SECRET)


@pytest.mark.parametrize(
    "extra",
    [
        # vLLM reads JSON-valued flags with json.loads: the escapes decode to the secret.
        '--hf-overrides {"x":"' + ESCAPED + '"}',
        '--hf-overrides {"x":"' + SECRET[:3] + f"\\u{ord(SECRET[3]):04X}" + SECRET[4:] + '"}',
        f"--lora-modules x=https://u:{percent(SECRET, safe='')}@h.example",
        # Shell quoting splits the text the user wrote, not the word the engine gets.
        f"--seed 'x={SECRET[:6]}'\"{SECRET[6:]}\"",
    ],
)
def test_a_secret_in_a_spelling_the_engine_decodes_is_refused_naming_extra_args(extra):
    env = {"ENGINE": "vllm", "HF_TOKEN": SECRET, "EXTRA_ARGS": extra}
    status, printed = run_main(["--dry-run"], env)
    assert status == 2
    assert printed.startswith("longcat-deploy: error: EXTRA_ARGS: holds the value of HF_TOKEN,")
    assert SECRET[4:10] not in printed


def test_the_key_file_is_read_by_the_dry_run_and_check_where_it_exists(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("k3y-from-a-file\n")
    reused = {
        "ENGINE": "vllm",
        "API_KEY_FILE": str(key_file),
        "SERVED_MODEL_NAME": "k3y-from-a-file",
    }
    for command in (["--dry-run"], ["check"]):
        status, printed = run_main(command, reused)
        assert status == 2, printed
        assert printed.startswith(
            "longcat-deploy: error: SERVED_MODEL_NAME: holds the value of the key in API_KEY_FILE,"
        )
        assert "k3y-from" not in printed
    status, printed = run_main(["--dry-run"], {"ENGINE": "vllm", "API_KEY_FILE": str(key_file)})
    assert status == 0 and "read and checked" in printed
    missing = {"ENGINE": "vllm", "API_KEY_FILE": "/run/secrets/none"}
    status, printed = run_main(["--dry-run"], missing)
    assert status == 0 and "not here: read at start" in printed


@pytest.mark.parametrize("how", ["empty HF_HOME", "empty XDG_CACHE_HOME", "long file", "BOM"])
def test_the_stored_token_is_found_where_huggingface_hub_finds_it(how, tmp_path, monkeypatch):
    """huggingface_hub/constants.py: os.getenv(name, default), so an empty HF_HOME or
    XDG_CACHE_HOME makes the path relative; _auth._get_token_from_file reads the whole file."""
    monkeypatch.chdir(tmp_path)
    token = "hf_StoredTok3nValue"
    env = {"ENGINE": "vllm", "SERVED_MODEL_NAME": f"m-{token}", "HOME": str(tmp_path / "home")}
    if how == "empty HF_HOME":
        env["HF_HOME"] = ""
        (tmp_path / "token").write_text(token)
    elif how == "empty XDG_CACHE_HOME":
        env["XDG_CACHE_HOME"] = ""
        (tmp_path / "huggingface").mkdir()
        (tmp_path / "huggingface" / "token").write_text(token)
    else:
        env["HF_HOME"] = str(tmp_path)
        text = "\n" * 5000 + token if how == "long file" else "\ufeff" + token + "\n"
        (tmp_path / "token").write_text(text, encoding="utf-8")
    status, printed = run_main(["--dry-run"], env)
    assert status == 2 and "holds the value of the stored Hub token" in printed
    assert "Tok3n" not in printed


def test_overlapping_secrets_are_blanked_whole():
    configure(["hf_AAAAbbbbCCCC", "CCCCdddd1234"])
    assert redact("NNODES is 'hf_AAAAbbbbCCCCdddd1234'") == "NNODES is '***'"
    configure([])
    env = {
        "ENGINE": "vllm",
        "HF_TOKEN": "hf_AAAAbbbbCCCC",
        "API_KEY": "CCCCdddd1234",
        "NNODES": "hf_AAAAbbbbCCCCdddd1234",
    }
    status, printed = run_main(["--dry-run"], env)
    assert status == 2 and "1234" not in printed and "bbbb" not in printed


# --- fifth pass ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable, value",
    [
        ("HTTP_PROXY", "http://u:{pw}/x@127.0.0.1:3128"),
        ("https_proxy", "u:{pw}/x@127.0.0.1:3128"),
        ("ALL_PROXY", "socks5://u:{pw}@[::1"),
        ("HF_ENDPOINT", "http://u:12/{pw}@hub.example"),
    ],
)
def test_a_proxy_or_endpoint_whose_password_cuts_the_url_short_is_refused_unshown(variable, value):
    """httpx would fail with "Invalid port: 'PASSWORD'", a message redaction cannot read
    as a URL: the variable is refused before any request (weights.check_proxies)."""
    env = {"ENGINE": "vllm", variable: value.format(pw="Pr0xyPassw0rd")}
    status, printed = run_main(["--dry-run"], env)
    assert status == 2
    assert printed.startswith(f"longcat-deploy: error: {variable} is refused (value not shown")
    assert "Passw0rd" not in printed


def test_a_proxy_without_user_info_passes():
    env = {"ENGINE": "vllm", "HTTP_PROXY": "http://proxy.example:3128", "no_proxy": "localhost"}
    status, printed = run_main(["--dry-run"], env)
    assert status == 0, printed


@pytest.mark.parametrize(
    "extra, encoding",
    [
        ({"EXTRA_ARGS": "--foo \udcff"}, "utf-8"),  # an undecodable byte, as os.environ keeps it
        ({"SERVED_MODEL_NAME": "namé"}, "ascii"),
    ],
)
def test_text_the_output_encoding_cannot_carry_is_escaped_not_a_traceback(extra, encoding):
    env = clean_env({"ENGINE": "vllm", "PYTHONIOENCODING": encoding})
    env.update(extra)
    result = subprocess.run(
        [sys.executable, "-m", "entrypoint", "--dry-run"],
        env={k: v.encode("utf-8", "surrogateescape") for k, v in env.items()},
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert b"Traceback" not in result.stderr
    assert result.returncode in (0, 2), result.stderr
    assert b"\\udcff" in result.stdout + result.stderr or b"\\xe9" in result.stdout


def test_redaction_of_a_long_word_takes_linear_time():
    """The scheme-less user-info pattern was tried from every character: 10 s for 32 KiB."""
    import time

    started = time.process_time()
    configure([SECRET, "ключ-ü-geheim"])
    for n in (16_000, 64_000):
        redact("--x=" + "a" * n + ":" + "b" * n + "@!")
        redact("a." * n + "@x")
        redact("%68%66" * n + "é")  # the percent and case-insensitive patterns
    assert time.process_time() - started < 2


@pytest.mark.parametrize(
    "spell",
    [
        lambda s: "".join(f"\\{ord(c):03o}" for c in s),  # octal, as Jinja reads it
        lambda s: "".join(f"\\U{ord(c):08x}" for c in s),
        lambda s: "\\N{LATIN SMALL LETTER H}" + s[1:],
    ],
    ids=["octal", "U8", "N-name"],
)
def test_a_secret_in_a_chat_templates_string_escapes_is_refused(spell):
    template = "{{ '" + spell(SECRET) + "' }}"
    env = {"ENGINE": "vllm", "HF_TOKEN": SECRET}
    status, printed = run_main(["--dry-run", "--", "--chat-template", template], env)
    assert status == 2
    assert "the arguments after the image name: holds the value of HF_TOKEN" in printed


# --- sixth pass ---------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "http_proxy", "All_Proxy", "HF_ENDPOINT"])
@pytest.mark.parametrize(
    "reuse",
    [
        {"EXTRA_ARGS": "--lora-modules x=Pr0xy@Passw0rd"},
        {"SERVED_MODEL_NAME": "Pr0xy@Passw0rd"},
    ],
)
def test_a_url_password_reused_on_the_engines_argv_is_refused(variable, reuse):
    """A URL's password is a secret too (settings.url_passwords), decoded as the server
    receives it; proxies in any case, as urllib.request.getproxies reads them."""
    url = "http://u:Pr0xy%40Passw0rd@127.0.0.1:3128"
    status, printed = run_main(["--dry-run"], {"ENGINE": "vllm", variable: url, **reuse})
    assert status == 2
    assert f"holds the value of the password in {variable}," in printed
    assert "Passw0rd" not in printed


def test_a_proxy_variable_in_mixed_case_is_checked_too():
    env = {"ENGINE": "vllm", "Http_Proxy": "http://u:Pr0xyPassw0rd/zz@127.0.0.1:1"}
    status, printed = run_main(["--dry-run"], env)
    assert status == 2
    assert printed.startswith("longcat-deploy: error: Http_Proxy is refused (value not shown")
    assert "Passw0rd" not in printed


def test_a_value_from_the_hub_that_is_not_text_is_redacted_before_it_is_cut():
    from entrypoint.transfer import check_commit

    configure([SECRET])
    with pytest.raises(ValueError) as refused:
        check_commit(["A" * 60 + SECRET])
    assert SECRET[:6] not in str(refused.value) and "hf_Sup" not in str(refused.value)


# --- seventh pass -------------------------------------------------------------------------


def test_a_huge_stored_token_file_is_read_only_in_part(tmp_path):
    """HF_TOKEN_PATH naming a 1 TiB (sparse) file: every command used to end in MemoryError."""
    big = tmp_path / "big.tok"
    with open(big, "wb") as f:
        f.truncate(2**40)
    for command in (["--help"], ["env-table"], ["--dry-run"]):
        status, printed = run_main(command, {"ENGINE": "vllm", "HF_TOKEN_PATH": str(big)})
        assert status == 0 and "Traceback" not in printed


def test_the_basic_credentials_an_http_client_makes_of_a_url_are_blanked():
    """httpx sends a URL's user:password as Authorization: Basic base64 (RFC 7617); a server
    may echo it in any shape, e.g. a Python tuple."""
    import base64

    from entrypoint.settings import secret_values

    env = {"HF_ENDPOINT": "http://user:Pr0xy%40Passw0rd@127.0.0.1:9"}
    configure(secret_values(env))
    basic = base64.b64encode(b"user:Pr0xy@Passw0rd").decode()
    for echo in (f"('Authorization', 'Basic {basic}')", f"Authorization - Basic {basic}", basic):
        assert basic[:8] not in redact(echo), echo


@pytest.mark.parametrize("variable", ["HF_ENDPOINT", "HTTPS_PROXY"])
def test_a_token_given_as_a_urls_user_name_is_a_secret(variable):
    token = "hf_UserN4meT0ken"
    env = {"ENGINE": "vllm", variable: f"http://{token}@127.0.0.1:9", "SERVED_MODEL_NAME": token}
    status, printed = run_main(["--dry-run"], env)
    assert status == 2 and f"holds the value of the token in {variable}" in printed
    assert "N4meT0ken" not in printed


# --- eighth pass --------------------------------------------------------------------------


def test_a_token_as_a_urls_user_name_is_blanked_as_the_basic_credentials_it_makes():
    import base64

    from entrypoint.settings import secret_values

    token = "hf_UserN4meT0ken"
    for url in (f"http://{token}@127.0.0.1:9", f"http://{token}:@127.0.0.1:9"):
        configure(secret_values({"HF_ENDPOINT": url}))
        basic = base64.b64encode(f"{token}:".encode()).decode()
        assert basic[:8] not in redact(f"403 Forbidden: credentials seen: {basic}.")
        configure([])
        assert redact(url) == "http://***@127.0.0.1:9"


@pytest.mark.parametrize("value", ["abc", "", "hf_Sup3rSecretT0ken9"])
def test_a_timeout_huggingface_hub_cannot_read_is_refused_before_its_import(value, monkeypatch):
    """huggingface_hub's import int()s HF_HUB_ETAG_TIMEOUT (constants.py, _as_int) and
    prints its failure on stdout, unredacted; the launcher then blamed MODEL (exit 4)."""
    from entrypoint.weights import _hub

    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", value)
    with pytest.raises(ConfigError) as refused:
        _hub()
    assert str(refused.value).startswith("HF_HUB_ETAG_TIMEOUT is ")
    assert refused.value.exit_status == 2


# --- ninth pass ---------------------------------------------------------------------------


def test_redaction_of_a_long_colon_separated_word_takes_linear_time():
    """Without a scheme a match may start after each ":": 60 KiB of "a:" took 41 s."""
    import time

    started = time.process_time()
    redact("--a " + "a:" * 30_000 + " --b x@y")
    assert time.process_time() - started < 3
    assert redact("u:" + "p" * 200 + "@host.example") == "u:***@host.example"


def test_a_secret_split_by_a_jinja_line_continuation_is_refused():
    """Jinja's string literals drop a backslash before a line break (unicode-escape)."""
    for brk in ("\\\n", "\\\r\n"):
        template = '{{ "' + SECRET[:8] + brk + SECRET[8:] + '" }}'
        env = {"ENGINE": "vllm", "HF_TOKEN": SECRET}
        status, printed = run_main(["--dry-run", "--", "--chat-template", template], env)
        assert status == 2 and "holds the value of HF_TOKEN" in printed


def test_the_oidc_identity_token_and_the_staging_token_are_secrets(tmp_path):
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    env = {"ENGINE": "vllm", "HF_OIDC_RESOURCE": "model/x", "HF_OIDC_ID_TOKEN": jwt}
    status, printed = run_main(["--dry-run", "--", "--lora-modules", f"a={jwt}"], env)
    assert status == 2 and "holds the value of HF_OIDC_ID_TOKEN" in printed
    assert "c2lnbmF0" not in printed
    from entrypoint.settings import stored_hub_token_path

    staged = stored_hub_token_path({"HUGGINGFACE_CO_STAGING": "1", "HF_HOME": str(tmp_path)})
    assert staged.endswith("/.cache/huggingface_staging/token")


# --- tenth pass ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, value",
    [
        (b"HF_TOKEN", b"hf_\xe9\xe8abcdefgh"),
        (b"API_KEY", b"k\xe9yabcdefgh"),
        (b"HTTPS_PROXY", b"http://u:p\xe9asswordxx@127.0.0.1:9"),
        (b"HF_ENDPOINT", b"http://p\xe9tokenxxxx@127.0.0.1:9"),
    ],
)
@pytest.mark.parametrize("command", [["--dry-run"], ["--help"]])
def test_a_secret_with_bytes_that_are_not_utf8_is_no_traceback(name, value, command):
    """os.environ keeps an undecodable byte as a lone surrogate; percent-encoding and
    base64 of it raised UnicodeEncodeError before any check (output.configure)."""
    env = {b"PATH": os.environb[b"PATH"], b"HOME": b"/tmp", b"ENGINE": b"vllm", name: value}
    result = subprocess.run(
        [sys.executable, "-m", "entrypoint", *command],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert b"Traceback" not in result.stderr
    assert result.returncode in (0, 2), result.stderr
    assert b"abcdefgh" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "token, says",
    [
        ("hf_Abc123defGhi\n", "Remove the trailing newline or spaces"),
        ("hf_Abc123 defGhi", "It holds a space, a line break or a control character inside"),
        ("hf_Abc123\ndefGhi", "It holds a space, a line break or a control character inside"),
    ],
)
def test_a_token_with_whitespace_is_told_where_it_is(token, says):
    """An inner space was told "Remove the trailing newline or spaces" (pass 11)."""
    from entrypoint.values import check_secret

    with pytest.raises(ConfigError) as refused:
        check_secret("HF_TOKEN", token)
    assert says in str(refused.value)
    assert "Abc123" not in str(refused.value)


def test_every_token_in_huggingface_hubs_stored_tokens_is_a_secret(tmp_path):
    """Another account's token and a refresh token in HF_HOME/stored_tokens reached the
    engine's command line, and one that was a word of the plan was blanked there (pass 12)."""
    (tmp_path / "token").write_text("hf_ActiveTok9Qzxy")
    (tmp_path / "stored_tokens").write_text(
        "[act]\nhf_token = hf_ActiveTok9Qzxy\nrefresh_token = hf_oauth_RefrZ8kq11\n"
        "expires_at = 1000\n\n[other]\nhf_token: hf_OtherTok5Wpm\n"
    )
    for reused in ("hf_oauth_RefrZ8kq11", "hf_OtherTok5Wpm"):
        env = {"ENGINE": "vllm", "HF_HOME": str(tmp_path), "EXTRA_ARGS": f"--x {reused}"}
        status, printed = run_main(["--dry-run"], env)
        assert status == 2, printed
        assert f"in {tmp_path / 'stored_tokens'}" in printed and reused not in printed
    (tmp_path / "stored_tokens").write_text("[other]\nhf_token = complete\n")
    status, printed = run_main(["--dry-run"], {"ENGINE": "vllm", "HF_HOME": str(tmp_path)})
    assert status == 2, printed
    assert "part of the launcher's own text" in printed


def test_a_proxy_scheme_httpx_cannot_use_is_refused_unshown(monkeypatch):
    """HTTP_PROXY=ftp://... was reported as an unreadable model listing, exit 4 (pass 12);
    a SOCKS proxy without socksio failed only at the first request (pass 13)."""
    from entrypoint import weights
    from entrypoint.weights import check_proxies

    monkeypatch.setattr(weights, "_has_socksio", lambda: False)
    with pytest.raises(ConfigError) as refused:
        check_proxies({"ALL_PROXY": "socks5h://127.0.0.1:1080"})
    assert "httpx needs the socksio package for a SOCKS proxy" in str(refused.value)
    monkeypatch.setattr(weights, "_has_socksio", lambda: True)

    with pytest.raises(ConfigError) as refused:
        check_proxies({"HTTP_PROXY": "ftp://user:S0cksPassw0rd1@127.0.0.1:9"})
    assert refused.value.exit_status == 2
    assert "Its scheme is not one httpx can use" in str(refused.value)
    assert "S0cksPassw0rd1" not in str(refused.value)
    check_proxies({"HTTPS_PROXY": "socks5h://127.0.0.1:1080", "ALL_PROXY": "http://p:3128"})


@pytest.mark.parametrize(
    "echoed",
    [
        "\\u0068f_Sup3rSecretT0ken9",
        "\\\\u0068\\u0066_Sup3rSecretT0ken9",
        "\\x68f_sup3rsecrett0ken9",
    ],
)
def test_a_secret_with_json_or_python_escapes_in_an_echo_is_blanked(echoed):
    """A server's answer with the token JSON-escaped was printed (pass 12)."""
    configure([SECRET])
    assert redact(f"<html>{echoed}</html>") == "<html>***</html>"


@pytest.mark.parametrize("command", [["--dry-run"], ["prefetch"]])
def test_a_revision_that_holds_a_secret_is_refused_whatever_the_download(command):
    """Refused only with DOWNLOAD=0 (the engine's command line); with the download on, the
    token went into the Hub's URL and named a file in the cache (pass 13)."""
    env = {"ENGINE": "vllm", "HF_TOKEN": SECRET, "MODEL_REVISION": SECRET.lower()}
    status, printed = run_main(command, env)
    assert status == 2, printed
    assert printed.startswith("longcat-deploy: error: MODEL_REVISION is refused")
    assert "not the value of HF_TOKEN" in printed and SECRET.lower() not in printed.lower()
