"""build.py's command line: a ``fire`` CLI over the steps in this package.

``python build.py [OPTIONS] COMMAND [ENGINE ...] [OPTIONS]``. The options every command
shares are ``images.matrix.Options``: fire passes flags given before or after the command's
name to ``Commands``' constructor, whose signature is made from that class. Each command
adds its own options.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys

from entrypoint.output import redact

from .errors import EXIT_INTERRUPTED, EXIT_USAGE, BuildError, UsageError, shown
from .matrix import Options, format_plan, load_matrix, plan

_OVERVIEW = """\
Build, verify, tag and push the LongCat-Flash engine images (images/matrix.toml).

Commands (python build.py COMMAND --help for each): plan (or list), build, push. Each takes
engine names (default: every engine in the matrix) and the options below, before or after
the command's name. An image is tagged only after `python3 -m entrypoint check --all`
passed inside it. Exit statuses: 0 done, 1 a build, verification, pull or push failed (or
no daemon answers), 2 bad arguments or a malformed DOCKER_HOST, 74 the output could not be
written, 130 interrupted."""


def _constructor_signature() -> inspect.Signature:
    """``(self, *, <each field of Options>: str = <its default>)``: what fire reads for the
    flags (every shared option is text on the command line)."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=str)
        for f in dataclasses.fields(Options)
    ]
    return inspect.Signature(params)


def _options_help() -> str:
    """The ``Args:`` section of Options' docstring: fire shows it as the flags' help."""
    doc = inspect.cleandoc(Options.__doc__)
    return doc[doc.index("Args:") :]


class Commands:
    __doc__ = _OVERVIEW + "\n\n" + _options_help()

    def __init__(self, **options):
        self._options = Options(**options)

    __init__.__signature__ = _constructor_signature()

    def plan(self, *engines, format="text"):
        """Print what would be built, from which base, with which tags. Needs no daemon.

        Also takes the options every command takes (python build.py --help).

        Args:
            engines: engine names (default: all in the matrix).
            format: "text" or "json".
        """
        if format not in ("text", "json"):
            raise UsageError(f"--format must be text or json, got {shown(format)}")
        matrix = load_matrix()
        targets = plan(matrix, engines, self._options)
        if format == "json":
            print(
                json.dumps(
                    [dataclasses.asdict(t) | {"labels": t.labels()} for t in targets], indent=2
                )
            )
        else:
            print(format_plan(targets, matrix))

    list = plan

    def build(self, *engines, no_cache=False, push=False, cache_dir=None, record_digests=False):
        """Build each image, verify it inside (the launcher's check --all), then tag it.

        Also takes the options every command takes (python build.py --help).

        Args:
            engines: engine names (default: all in the matrix).
            no_cache: build every step again.
            push: push every tag once the image is verified and tagged.
            cache_dir: where wheels are cached (default: ~/.cache/longcat-deploy/build).
            record_digests: write the digest of each official base that images/matrix.toml
                lacks into it, once the base is pulled.
        """
        from .context import build_cache_dir
        from .pipeline import build_targets

        matrix = load_matrix()
        targets = plan(matrix, engines, self._options)
        build_targets(
            targets,
            matrix=matrix,
            no_cache=bool(no_cache),
            push=bool(push),
            cache=build_cache_dir(cache_dir),
            record_digests=bool(record_digests),
        )

    def push(self, *engines):
        """Push the tags of images built before (same selection options as build).

        Also takes the options every command takes (python build.py --help), except
        --base-image.

        Args:
            engines: engine names (default: all in the matrix).
        """
        from .dockerbuild import docker_client
        from .publish import push_tags

        matrix = load_matrix()
        targets = plan(matrix, engines, self._options)
        client = docker_client()
        for target in targets:
            push_tags(client, target.tags)


# Options a command does not take although every other one does.
_NOT_FOR = {"push": ("base_image",)}


def _accepted(command: str) -> dict[str, object]:
    """{option name: default} that ``command`` takes: the shared ones, then its own."""
    method = getattr(Commands, command)
    params = list(inspect.signature(Commands.__init__).parameters.values())[1:]
    params += [
        p
        for name, p in inspect.signature(method).parameters.items()
        if name != "self" and p.kind is not p.VAR_POSITIONAL
    ]
    return {p.name: p.default for p in params if p.name not in _NOT_FOR.get(command, ())}


def _spellings(names) -> set[str]:
    return {f"--{n}" for n in names} | {f"--{n.replace('_', '-')}" for n in names}


def protect_strings(argv: list[str]) -> list[str]:
    """Quote every text option's value and positional words so fire keeps them text.

    fire evaluates every value as a Python literal: ``--tag=1.0`` would become the float
    1.0 and ``--revision=0123`` a syntax error. ``repr`` of the text is a literal that
    evaluates back to exactly that text. An option is text unless its default is a bool
    (``--no-cache``, ``--push``); a list (``--tag='[a,b]'``) is left to fire.
    """
    text = set()
    for command in ("plan", "build", "push"):
        text |= {n for n, default in _accepted(command).items() if not isinstance(default, bool)}
    names = _spellings(text)
    protected, i = [], 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in names and eq:
            protected.append(f"{name}={value!r}" if not value.startswith("[") else arg)
        elif arg in names and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            nxt = argv[i + 1]
            protected += [arg, nxt if nxt.startswith("[") else repr(nxt)]
            i += 1
        elif (
            i > 0 and not arg.startswith("-") and re.fullmatch(r"[0-9.eE+_-]+|None|True|False", arg)
        ):
            protected.append(repr(arg))  # a positional word that looks like a literal
        else:
            protected.append(arg)
        i += 1
    return protected


def check_options(argv: list[str]) -> None:
    """Refuse an option the command does not take, before fire runs anything.

    fire runs the command first and complains about arguments it could not use afterwards,
    so ``build --cdua=all`` would build everything before saying so.

    Raises:
        UsageError: naming the unknown option and the ones the command accepts; an
            argument holding an ``@`` that is not a digest's (not shown); or anything
            after a lone ``--`` but ``--help`` (fire's own flags).
    """
    for word in argv:
        # No argument build.py takes holds an "@" but a digest; fire would quote the word
        # whole ("Could not consume arg"), user:pass/word@host included, which redaction
        # cannot read as a URL.
        if "@" in word and not re.search(r"@sha256:[0-9a-f]{64}$", word):
            raise UsageError(
                f"an argument holding '@' is refused: {shown(word)}; build.py takes none but "
                "an image digest (NAME@sha256:...)"
            )
    words = argv[: argv.index("--")] if "--" in argv else argv
    fire_flags = argv[len(words) + 1 :]
    if [flag for flag in fire_flags if flag not in ("--help", "-h")]:
        # After a lone "--" fire reads its own flags (fire/core.py, parser.py):
        # --interactive opens a Python REPL, --trace and --verbose print its internals,
        # --completion a shell script. A build script takes none of them.
        raise UsageError(
            "build.py takes nothing after '--' but --help; options go before it, e.g. "
            "build.py build vllm --push"
        )
    command = next((w for w in words if not w.startswith("-")), None)
    if command is None or not callable(getattr(Commands, command, None)) or command.startswith("_"):
        return  # fire reports an unknown command itself, before running anything
    accepted = list(_accepted(command))
    spellings = _spellings(accepted) | {f"--no{n}" for n in accepted} | {"--help", "-h"}
    for word in words:
        name = word.split("=", 1)[0]
        if name.startswith("-") and name not in spellings:
            raise UsageError(
                f"{command} has no option {name}; it takes: "
                + ", ".join(f"--{n.replace('_', '-')}" for n in accepted)
            )


def _writable() -> bool:
    """Whether stdout and stderr can still be flushed (an OSError from elsewhere, such as
    the Docker socket, leaves them working)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return False
    return True


def _error(message: str) -> None:
    """Print ``build.py: error: MESSAGE`` on stderr, redacted.

    Through the launcher's one redaction (``entrypoint.output.redact``): the docker SDK's
    and requests' errors quote ``DOCKER_HOST`` and registry URLs, whose passwords it
    blanks with no secret configured.
    """
    print(redact(f"build.py: error: {message}"), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status. Errors print one message, redacted
    (``_error``), no traceback.

    Everything written to stdout and stderr meanwhile passes ``entrypoint.output.redact``
    (``images.streams.redacted_output``): fire's own errors and usage, which quote the
    arguments, the docker SDK's messages, the build's and the push's progress lines.

    Output that cannot be written (``>/dev/full``, a closed pipe) ends it with exit status
    74, as the launcher (``entrypoint.errors.output_failed``); so does a stdout or stderr
    closed at start (``>&-``: Python sets ``sys.stdout`` or ``sys.stderr`` to None), before
    anything runs: a build's summary or an error would go nowhere.
    """
    from entrypoint.errors import output_failed

    from .streams import redacted_output

    if sys.stdout is None or sys.stderr is None:
        return output_failed()
    try:
        with redacted_output():
            status = _run(argv)
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the output cannot be written (>/dev/full, a closed pipe)
        return output_failed()  # EXIT_OUTPUT, 74, as the launcher's
    return status


def _run(argv: list[str] | None) -> int:
    try:
        import fire
    except ImportError:
        _error("fire is missing: pip install '.[build]'")
        return EXIT_USAGE
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        check_options(args)
        fire.Fire(Commands, command=protect_strings(args), name="build.py")
    except BuildError as exc:
        _error(str(exc))
        return exc.exit_status
    except fire.core.FireExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print("build.py: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the docker SDK's and requests' errors, OSError, ...
        if isinstance(exc, OSError) and not _writable():
            raise  # main: the output is what failed (exit 74)
        _error(f"{type(exc).__name__}: {exc}")
        return 1
    return 0
