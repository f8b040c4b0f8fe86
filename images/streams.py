"""build.py's stdout and stderr, redacted: whoever writes to them (fire, the docker SDK,
Python's warnings, our progress lines) goes through ``entrypoint.output.redact``.

``redacted_output()`` swaps ``sys.stdout`` and ``sys.stderr`` for ``RedactingStream``s for
the length of a command. Writers that look the streams up when they write see them: fire
(fire/core.py: ``print(..., file=sys.stderr)``, ``Display(..., out=sys.stdout)``), logging's
last-resort handler (logging/__init__.py, ``_StderrHandler.stream``), ``warnings``, and this
package (each ``out`` defaults to ``sys.stdout`` at the call). Subprocesses do not: build.py
captures the output of every one it runs (``images.context``, ``images.matrix``).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TextIO

from entrypoint.output import redact


class RedactingStream(io.TextIOBase):
    """A text stream that writes each complete line to ``target`` after ``redact``.

    Line-buffered: text is held until its line ends, so a secret written in pieces (a
    build's output stream, ``print`` of several arguments) is blanked whole. ``flush``
    flushes ``target`` but keeps an unfinished line; ``close`` writes it out (redacted)
    and leaves ``target`` open.

    ``isatty()`` is False whatever ``target`` is: fire then writes help on this stream
    instead of piping it to a pager process (fire/console/console_io.py, ``More``), which
    would write to the terminal past the redaction; termcolor adds no colours then.

    Args:
        target: where the redacted text goes (the real ``sys.stdout`` or ``sys.stderr``).
    """

    def __init__(self, target: TextIO):
        super().__init__()
        self._target = target
        self._pending = ""

    @property
    def encoding(self) -> str:
        return getattr(self._target, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:
        return getattr(self._target, "errors", None)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        """Hold ``text``; write every line it completes, redacted. Returns ``len(text)``."""
        if self.closed:
            raise ValueError("write to closed file")
        self._pending += text
        if "\n" in text:
            lines, _, self._pending = self._pending.rpartition("\n")
            self._target.write(redact(lines + "\n"))
        return len(text)

    def flush(self) -> None:
        """Flush ``target``; an unfinished line stays held until its end or ``close``."""
        if not self.closed:
            self._target.flush()

    def close(self) -> None:
        """Write the unfinished line (redacted) and flush ``target``; ``target`` stays open."""
        if self.closed:
            return
        pending, self._pending = self._pending, ""
        try:
            if pending:
                self._target.write(redact(pending))
            self._target.flush()
        finally:
            super().close()


@contextmanager
def redacted_output() -> Iterator[None]:
    """Run the body with ``sys.stdout`` and ``sys.stderr`` redacting (``RedactingStream``);
    restore them afterwards, the last unfinished lines written out.

    An output that can no longer be written then (a reader that went away: a closed pipe)
    is left at that: the command has ended, and there is nowhere to say so.
    """
    saved = sys.stdout, sys.stderr
    wrapped = RedactingStream(saved[0]), RedactingStream(saved[1])
    sys.stdout, sys.stderr = wrapped
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        for stream in wrapped:
            with suppress(OSError, ValueError):
                stream.close()
