"""vLLM reasoning parser for LongCat-Flash-Thinking: ``<longcat_think>...</longcat_think>``.

A vLLM plugin, not part of the launcher: the launcher never imports this file. For
``VARIANT=thinking`` it passes its path to ``vllm serve --reasoning-parser-plugin``, and
vLLM imports it by path (``vllm/utils/import_utils.py``, ``import_plugin`` and
``import_from_path``: the module is named after the file) in the API server and in the
engine cores. Importing it registers the parser under ``longcat_think``
(``ReasoningParserManager.register_module``, ``vllm/reasoning/abs_reasoning_parsers.py``),
the name ``--reasoning-parser`` selects. Responses then carry the reasoning in
``reasoning`` (``message.reasoning``, ``delta.reasoning``;
``vllm/entrypoints/openai/chat_completion/protocol.py``) and the answer in ``content``.

The interface is vLLM 0.33.0's ``ReasoningParser`` (``vllm/reasoning/abs_reasoning_parsers.py``):

- ``extract_reasoning`` for a whole answer, ``extract_reasoning_streaming`` for one delta;
- ``is_reasoning_end`` on the rendered prompt decides whether the output starts inside the
  reasoning (``vllm/parser/abstract_parser.py``, ``parse_delta``; and the structured-output
  gate, ``vllm/v1/structured_output/__init__.py``), ``is_reasoning_end_streaming`` when it
  ends, and ``extract_content_ids`` what follows it;
- ``set_prompt_token_ids`` gives the rendered prompt before any output is parsed, in
  streaming and whole answers alike (``vllm/entrypoints/openai/chat_completion/serving.py``).

What LongCat's Thinking models emit (docs/engines.md, "Serving features"): the chat template
ends the prompt with ``<longcat_think>``, so the output starts inside the reasoning, closes
it with ``</longcat_think>`` and continues with the answer (and tool calls). An output that
opens the tag itself, after a prompt that did not, is handled too: in the API server the
first characters of the output decide. The tags are parsed in the text, so a tag split
across streamed deltas, or made of several tokens, is recognised: text that may be the start
of a tag is held back until the next delta decides. When the tags are single tokens of the
vocabulary, the token-id methods use their ids (each step looks at the new ids only, as the
structured-output gate calls them on every decode step); otherwise they decode the ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vllm.entrypoints.generate.base.protocol import DeltaMessage
from vllm.reasoning import ReasoningParser, ReasoningParserManager

if TYPE_CHECKING:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.openai.responses.protocol import ResponsesRequest

NAME = "longcat_think"
START = "<longcat_think>"
END = "</longcat_think>"
# Tokens decoded around a step when the tags are not single tokens: enough to hold END.
_DECODE_WINDOW = 32


def _held_back(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of ``tag``."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ThinkSplitter:
    """Splits LongCat output into reasoning and content, one piece of text at a time.

    The one algorithm behind both the whole-answer and the streamed extraction, so the two
    always agree. ``feed`` returns only what is decided; text that may still turn out to be
    a tag is held back until more arrives or ``finish`` is called.

    Args:
        opened: the prompt ended inside the reasoning (``<longcat_think>`` is the last tag
            of the rendered prompt), so the output starts as reasoning; a repeated opening
            tag at its start is dropped. ``False``: the prompt closed or never opened it,
            so everything is content. ``None``: not known, so an output that starts with
            the opening tag (after whitespace) is reasoning until the closing tag, and
            any other output is content.
    """

    def __init__(self, opened: bool | None):
        self.phase = "start" if opened is not False else "content"
        self.opened = opened
        self.pending = ""  # undecided text
        self.ended = opened is False  # the reasoning is over (or never began)

    def feed(self, text: str) -> tuple[str, str]:
        """Take the next piece of output; return the (reasoning, content) decided by it."""
        self.pending += text
        reasoning = content = ""
        if self.phase == "start":
            stripped = self.pending.lstrip()
            if stripped.startswith(START):
                self.pending = stripped[len(START) :]
                self.phase = "reasoning"
            elif START.startswith(stripped):
                return "", ""  # blank, or the beginning of the opening tag: wait
            elif self.opened:
                self.phase = "reasoning"
            else:
                self.phase = "content"
                self.ended = True
        if self.phase == "reasoning":
            end = self.pending.find(END)
            if end < 0:
                keep = _held_back(self.pending, END)
                reasoning = self.pending[: len(self.pending) - keep]
                self.pending = self.pending[len(self.pending) - keep :]
                return reasoning, ""
            reasoning = self.pending[:end]
            self.pending = self.pending[end + len(END) :]
            self.phase = "content"
            self.ended = True
        if self.phase == "content":
            content, self.pending = self.pending, ""
        return reasoning, content

    def finish(self) -> tuple[str, str]:
        """The output is complete: release what was held back, as what it turned out to be."""
        rest, self.pending = self.pending, ""
        if self.phase == "start":
            return ("", "") if not rest.strip() else (("", rest) if not self.opened else (rest, ""))
        if self.phase == "reasoning":
            return rest, ""
        return "", rest


@ReasoningParserManager.register_module(NAME)
class LongCatThinkingReasoningParser(ReasoningParser):  # type: ignore[misc]
    """``--reasoning-parser longcat_think``: LongCat-Flash-Thinking's reasoning, apart.

    One instance parses one request (``vllm/parser/abstract_parser.py``, ``Parser``); the
    structured-output gate makes its own instance and calls only the token-id methods.
    """

    def __init__(self, tokenizer: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(tokenizer, *args, **kwargs)
        vocab = self.vocab
        self.start_token_id: int | None = vocab.get(START)
        self.end_token_id: int | None = vocab.get(END)
        # From the prompt (set_prompt_token_ids): True, it left the reasoning open; False, it
        # closed it; None, no tag in it, or not told (the output's first characters decide).
        self._opened: bool | None = None
        self._told_prompt = False
        self._splitter: ThinkSplitter | None = None

    @property
    def reasoning_start_str(self) -> str:
        return START

    @property
    def reasoning_end_str(self) -> str:
        return END

    def adjust_request(
        self, request: ChatCompletionRequest | ResponsesRequest
    ) -> ChatCompletionRequest | ResponsesRequest:
        # The tags may be special tokens, which the default skip_special_tokens=True drops
        # from the text before any parser sees it (vLLM's Hermes tool parser does the same
        # for its tags: vllm/tool_parsers/hermes_tool_parser.py, adjust_request).
        if self.start_token_id is not None or self.end_token_id is not None:
            request.skip_special_tokens = False
        return request

    # --- where the reasoning ends, in token ids ----------------------------------------

    def _last_tag(self, input_ids: Sequence[int]) -> str | None:
        """``START`` or ``END``, whichever comes last in ``input_ids``; ``None``: neither."""
        if self.start_token_id is not None and self.end_token_id is not None:
            for token in reversed(input_ids):
                if token == self.end_token_id:
                    return END
                if token == self.start_token_id:
                    return START
            return None
        text = self.model_tokenizer.decode(list(input_ids))
        start, end = text.rfind(START), text.rfind(END)
        if start < 0 and end < 0:
            return None
        return END if end > start else START

    def is_reasoning_end(self, input_ids: Sequence[int]) -> bool:
        """Whether the reasoning is over at the end of ``input_ids`` (the rendered prompt).

        False while a ``<longcat_think>`` is open (the Thinking template ends the prompt
        with it), True once it is closed. Without either tag: True for the
        structured-output gate, which starts the grammar at once; False in the API server
        (which told this parser the prompt first, ``set_prompt_token_ids``), so that
        extraction sees the output and its first characters decide whether it reasons.
        """
        last = self._last_tag(input_ids)
        if last is None:
            return not self._told_prompt
        return last == END

    def is_reasoning_end_streaming(
        self, input_ids: Sequence[int], delta_ids: Sequence[int]
    ) -> bool:
        """True when the reasoning ended with this step.

        In the API server, extraction has just seen the same step's text: its answer is the
        one extraction acted on. Elsewhere (the structured-output gate) the new ids decide.
        """
        if self._splitter is not None:
            return self._splitter.ended
        delta = list(delta_ids)
        if self.end_token_id is not None:
            return self.end_token_id in delta
        window = list(input_ids)[-(len(delta) + _DECODE_WINDOW) :]
        before = window[: len(window) - len(delta)] if delta else window
        return END in self.model_tokenizer.decode(
            window
        ) and END not in self.model_tokenizer.decode(before)

    def extract_content_ids(self, input_ids: list[int]) -> list[int]:
        """The ids after the last ``</longcat_think>`` token; ``[]`` without one (or when the
        tag is not a single token)."""
        if self.end_token_id is None or self.end_token_id not in input_ids:
            return []
        last = len(input_ids) - 1 - input_ids[::-1].index(self.end_token_id)
        return input_ids[last + 1 :]

    def count_reasoning_tokens(self, token_ids: Sequence[int]) -> int:
        """Tokens of the output inside the reasoning, tags excluded (0 when the tags are not
        single tokens)."""
        if self.start_token_id is None or self.end_token_id is None:
            return 0
        inside, count = bool(self._opened), 0
        for token in token_ids:
            if token == self.start_token_id:
                inside = True
            elif token == self.end_token_id:
                inside = False
            elif inside:
                count += 1
        return count

    # --- the prompt --------------------------------------------------------------------

    def set_prompt_token_ids(self, prompt_token_ids: Sequence[int]) -> None:
        """Remember whether the prompt leaves the reasoning open (see ``is_reasoning_end``)."""
        self._told_prompt = True
        last = self._last_tag(prompt_token_ids)
        self._opened = None if last is None else last == START

    def adjust_initial_state_from_prompt(self, prompt_token_ids: Sequence[int]) -> None:
        self.set_prompt_token_ids(prompt_token_ids)

    # --- extraction --------------------------------------------------------------------

    def extract_reasoning(
        self, model_output: str, request: ChatCompletionRequest | ResponsesRequest
    ) -> tuple[str | None, str | None]:
        """(reasoning, content) of a whole answer; ``None`` for an empty part."""
        splitter = ThinkSplitter(self._opened)
        reasoning, content = splitter.feed(model_output)
        more_reasoning, more_content = splitter.finish()
        return (reasoning + more_reasoning) or None, (content + more_content) or None

    def extract_reasoning_streaming(
        self,
        previous_text: str,
        current_text: str,
        delta_text: str,
        previous_token_ids: Sequence[int],
        current_token_ids: Sequence[int],
        delta_token_ids: Sequence[int],
    ) -> DeltaMessage | None:
        """The reasoning and content decided by this delta; ``None`` while undecided."""
        if self._splitter is None:
            self._splitter = ThinkSplitter(self._opened)
            if previous_text:  # deltas before this instance existed: catch up, unsent
                self._splitter.feed(previous_text)
        reasoning, content = self._splitter.feed(delta_text)
        if not reasoning and not content:
            return None
        return DeltaMessage(reasoning=reasoning or None, content=content or None)

    def get_streaming_fallback_content(
        self, previous_text: str, request: ChatCompletionRequest | ResponsesRequest
    ) -> str | None:
        """At the end of a stream that never closed the reasoning: text still held back.

        Called by ``Parser.finalize_generation`` (vllm/parser/abstract_parser.py); held
        text that was not a tag belongs where it stood, so only content comes back here.
        """
        if self._splitter is None:
            return None
        reasoning, content = self._splitter.finish()
        return content or None
