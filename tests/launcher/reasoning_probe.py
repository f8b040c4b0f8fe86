"""Run inside the vLLM environment: our reasoning parser plugin through vLLM's own classes.

Reads a JSON request on stdin, prints a JSON answer on stdout's last line (the assertions
are in tests/launcher/test_reasoning_plugin.py). Request::

    {"plugin": PATH, "tag_tokens": bool, "cases": [{"prompt": str, "output": str,
     "tools": bool, "splits": [[piece, ...], ...]}]}

``tag_tokens``: the tokenizer has ``<longcat_think>``, ``</longcat_think>`` and the tool
call tags as added special tokens (as LongCat's tokenizers have); without, every byte is a
token and the tags are several tokens.

For every case, as the API server does it (vllm/entrypoints/openai/chat_completion/
serving.py and stream_processor.py): the composed ``Parser`` from
``ParserManager.get_parser`` with our ``longcat_think`` reasoning parser (and vLLM's
``longcat`` tool parser when ``tools``), ``adjust_request``, then ``set_prompt_token_ids``
and ``parse`` for the whole answer, and ``parse_delta`` once per piece of each split for
streaming; and, as the structured-output gate does it (vllm/v1/structured_output/
__init__.py), a bare reasoning parser's ``is_reasoning_end`` on the prompt and
``is_reasoning_end_streaming`` one output token at a time.
"""

import json
import os
import sys

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import AddedToken, PreTrainedTokenizerFast  # noqa: E402
from vllm.entrypoints.openai.chat_completion.protocol import (  # noqa: E402
    ChatCompletionRequest,
)
from vllm.parser.parser_manager import ParserManager  # noqa: E402
from vllm.reasoning import ReasoningParserManager  # noqa: E402

TAGS = ["<longcat_think>", "</longcat_think>", "<longcat_tool_call>", "</longcat_tool_call>"]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def byte_tokenizer(tag_tokens: bool) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with one token per byte, and the tags as added tokens."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {char: i for i, char in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>")
    if tag_tokens:
        tokenizer.add_tokens(
            [AddedToken(tag, special=True, normalized=False) for tag in TAGS], special_tokens=True
        )
    return tokenizer


def request(tools: bool) -> ChatCompletionRequest:
    extra = {"tools": TOOLS, "tool_choice": "auto"} if tools else {}
    return ChatCompletionRequest(
        model="longcat", messages=[{"role": "user", "content": "hi"}], **extra
    )


def calls(function_calls) -> list:
    """``Parser.parse``'s FunctionCall list (vllm/parser/abstract_parser.py) as plain data."""
    return [{"name": c.name, "arguments": json.loads(c.arguments)} for c in function_calls or []]


def run_case(parser_cls, reasoner_cls, tokenizer, case) -> dict:
    prompt_ids = tokenizer.encode(case["prompt"], add_special_tokens=False)
    output_ids = tokenizer.encode(case["output"], add_special_tokens=False)
    req = request(case["tools"])

    whole = parser_cls(tokenizer, req.tools)
    req = whole.adjust_request(req)
    whole.set_prompt_token_ids(prompt_ids)
    reasoning, content, tool_calls = whole.parse(
        case["output"], req, enable_auto_tools=case["tools"], model_output_token_ids=output_ids
    )
    result = {
        "skip_special_tokens": req.skip_special_tokens,
        "whole": {"reasoning": reasoning, "content": content, "tool_calls": calls(tool_calls)},
        "streams": [],
    }

    for pieces in case["splits"]:
        assert "".join(pieces) == case["output"], pieces
        streamed = parser_cls(tokenizer, req.tools)
        deltas = []
        for i, piece in enumerate(pieces):
            delta = streamed.parse_delta(
                delta_text=piece,
                delta_token_ids=tokenizer.encode(piece, add_special_tokens=False),
                request=req,
                prompt_token_ids=prompt_ids,
                finished=i == len(pieces) - 1,
            )
            if delta is None:
                continue
            deltas.append(
                {
                    "reasoning": delta.reasoning,
                    "content": delta.content,
                    "tool_calls": [tc.model_dump(exclude_none=True) for tc in delta.tool_calls],
                }
            )
        result["streams"].append(deltas)

    gate = reasoner_cls(tokenizer)
    ended_in_prompt = gate.is_reasoning_end(prompt_ids)
    end_after = None
    if not ended_in_prompt:
        seen = list(prompt_ids)
        for i, token in enumerate(output_ids):
            seen.append(token)
            if gate.is_reasoning_end_streaming(seen, [token]):
                end_after = tokenizer.decode(output_ids[: i + 1])
                break
    result["gate"] = {
        "ended_in_prompt": ended_in_prompt,
        "end_after": end_after,
        "content_ids": tokenizer.decode(gate.extract_content_ids(output_ids)),
        "reasoning_tokens": gate.count_reasoning_tokens(output_ids),
    }
    return result


def main() -> int:
    job = json.load(sys.stdin)
    ReasoningParserManager.import_reasoning_parser(job["plugin"])
    registered = "longcat_think" in ReasoningParserManager.list_registered()
    reasoner_cls = ReasoningParserManager.get_reasoning_parser("longcat_think")
    tokenizer = byte_tokenizer(job["tag_tokens"])
    answers = []
    for case in job["cases"]:
        parser_cls = ParserManager.get_parser(
            tool_parser_name="longcat" if case["tools"] else None,
            reasoning_parser_name="longcat_think",
            enable_auto_tools=case["tools"],
            model_name="longcat",
            tokenizer=tokenizer,
        )
        answers.append(run_case(parser_cls, reasoner_cls, tokenizer, case))
    print(
        json.dumps({"registered": registered, "class": reasoner_cls.__name__, "answers": answers})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
