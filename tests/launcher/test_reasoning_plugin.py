"""The ``<longcat_think>`` reasoning parser we ship for vLLM, through vLLM's own classes.

The plugin (entrypoint/engines/vllm_longcat_reasoning.py) runs in the pinned vLLM's
environment (tests/engine_venvs.py), loaded the way ``vllm serve --reasoning-parser-plugin``
loads it, inside the composed parser the API server uses, with the LongCat tool parser
beside it where tools are asked for (tests/launcher/reasoning_probe.py). Each output is
parsed whole and streamed in many splits (every character, fixed sizes, each tag cut in
two), once with the tags as single special tokens (as LongCat's tokenizers have them) and
once as plain bytes.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from entrypoint.engines import vllm as vllm_engine
from tests.launcher.support import REPO, clean_env
from tests.launcher.test_engine_contract import engine_python

pytestmark = pytest.mark.engines

START, END = "<longcat_think>", "</longcat_think>"
OPEN_PROMPT = "<user>What is 2+2?</user><assistant>" + START  # the Thinking template's end
PLAIN_PROMPT = "<user>Hello</user><assistant>"
TOOL_JSON = '{"name": "get_weather", "arguments": {"city": "Beijing"}}'


def splits(text: str) -> list[list[str]]:
    """Ways a stream may cut ``text``: every character, fixed sizes, and each tag in two."""
    ways = [list(text)]
    for size in (2, 3, 5, 7, 11):
        ways.append([text[i : i + size] for i in range(0, len(text), size)])
    for tag in (START, END):
        at = text.find(tag)
        if at >= 0:
            for cut in (1, 2, len(tag) // 2, len(tag) - 1):
                ways.append([text[: at + cut], text[at + cut :]])
    return [way for way in ways if all(way)]


# name -> (prompt, output, tools, reasoning, content, tool calls)
CASES = {
    "opened-by-the-template": (
        OPEN_PROMPT,
        "Two and two.\nThat makes 4.</longcat_think>\n\nThe answer is 4.",
        False,
        "Two and two.\nThat makes 4.",
        "\n\nThe answer is 4.",
        [],
    ),
    "opened-by-the-model": (
        PLAIN_PROMPT,
        "\n<longcat_think>Greet back.</longcat_think>Hello!",
        False,
        "Greet back.",
        "Hello!",
        [],
    ),
    "tag-repeated-after-the-template": (
        OPEN_PROMPT,
        "<longcat_think>Sum it.</longcat_think>4",
        False,
        "Sum it.",
        "4",
        [],
    ),
    "no-reasoning-after-a-plain-prompt": (
        PLAIN_PROMPT,
        "<b>Hi</b>, no thinking here.",
        False,
        None,
        "<b>Hi</b>, no thinking here.",
        [],
    ),
    "closed-in-the-prompt": (
        OPEN_PROMPT + "Done." + END,
        "Just the answer.",
        False,
        None,
        "Just the answer.",
        [],
    ),
    "non-ascii": (
        OPEN_PROMPT,
        "先想一想：二加二。</longcat_think>答案：4 ✓",
        False,
        "先想一想：二加二。",
        "答案：4 ✓",
        [],
    ),
    "angle-brackets-inside-the-reasoning": (
        OPEN_PROMPT,
        "a < b and </b> is html</longcat_think>ok",
        False,
        "a < b and </b> is html",
        "ok",
        [],
    ),
    "tool-call-after-thinking": (
        OPEN_PROMPT,
        f"I need the weather.</longcat_think>\n<longcat_tool_call>\n{TOOL_JSON}\n"
        "</longcat_tool_call>",
        True,
        "I need the weather.",
        None,
        [{"name": "get_weather", "arguments": {"city": "Beijing"}}],
    ),
}


@pytest.fixture(scope="module", params=[True, False], ids=["tag-tokens", "byte-tags"])
def answers(request):
    tag_tokens = request.param
    job = {
        "plugin": vllm_engine.REASONING_PARSER_PLUGIN,
        "tag_tokens": tag_tokens,
        "cases": [
            {"prompt": prompt, "output": output, "tools": tools, "splits": splits(output)}
            for prompt, output, tools, *_ in CASES.values()
        ],
    }
    python = engine_python("vllm")
    env = clean_env({"PYTHONPATH": str(REPO)})
    done = subprocess.run(
        [str(python), "-m", "tests.launcher.reasoning_probe"],
        input=json.dumps(job),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["registered"] and result["class"] == "LongCatThinkingReasoningParser"
    return tag_tokens, dict(zip(CASES, result["answers"]))


def content_text(content: str | None) -> str:
    """Content as a client shows it once tool calls are taken out: blank counts as none."""
    return (content or "").strip()


@pytest.mark.parametrize("name", list(CASES))
def test_a_whole_answer_is_split(answers, name):
    _, results = answers
    _, _, tools, reasoning, content, tool_calls = CASES[name]
    whole = results[name]["whole"]
    assert whole["reasoning"] == reasoning
    if tools:
        assert whole["tool_calls"] == tool_calls
        assert content_text(whole["content"]) == content_text(content)
    else:
        assert whole["content"] == content


@pytest.mark.parametrize("name", list(CASES))
def test_every_streamed_split_adds_up_to_the_whole_answer(answers, name):
    _, results = answers
    _, output, tools, reasoning, content, tool_calls = CASES[name]
    streams = results[name]["streams"]
    assert len(streams) == len(splits(output))
    for deltas in streams:
        streamed_reasoning = "".join(d["reasoning"] or "" for d in deltas)
        streamed_content = "".join(d["content"] or "" for d in deltas)
        assert streamed_reasoning == (reasoning or ""), deltas
        if tools:
            assert content_text(streamed_content) == content_text(content), deltas
            names = [
                tc["function"]["name"]
                for d in deltas
                for tc in d["tool_calls"]
                if tc.get("function", {}).get("name")
            ]
            arguments = "".join(
                tc["function"].get("arguments") or ""
                for d in deltas
                for tc in d["tool_calls"]
                if "function" in tc
            )
            assert names == [call["name"] for call in tool_calls], deltas
            assert json.loads(arguments) == tool_calls[0]["arguments"], deltas
        else:
            assert streamed_content == (content or ""), deltas
        # No piece of a tag ever reaches a client.
        for delta in deltas:
            for text in (delta["reasoning"] or "", delta["content"] or ""):
                assert "longcat_think" not in text, deltas


def test_the_tags_are_not_skipped_before_the_parser_sees_them(answers):
    tag_tokens, results = answers
    for name, result in results.items():
        # Special tokens would vanish from the text with vLLM's default (None: True when
        # sampling); our parser keeps them when the tags are tokens, as vLLM's Hermes tool
        # parser does for tool calls.
        tools = CASES[name][2]
        keeps = result["skip_special_tokens"] is False
        assert keeps is (tag_tokens or tools), name


@pytest.mark.parametrize("name", list(CASES))
def test_the_structured_output_gate_agrees_on_where_the_reasoning_ends(answers, name):
    tag_tokens, results = answers
    prompt, output, *_ = CASES[name]
    gate = results[name]["gate"]
    opened = prompt.endswith(START)
    assert gate["ended_in_prompt"] is (not opened)
    if opened:
        # The first step that completes </longcat_think>, in both tokenizations.
        assert gate["end_after"] == output[: output.index(END) + len(END)]
        after = output[output.index(END) + len(END) :]
        assert gate["content_ids"] == (after if tag_tokens else "")


def test_reasoning_tokens_are_counted_when_the_tags_are_tokens(answers):
    tag_tokens, results = answers
    gate = results["opened-by-the-model"]["gate"]
    # Counted by a parser that was not told the prompt: the model's own tags delimit.
    assert gate["reasoning_tokens"] == (len(b"Greet back.") if tag_tokens else 0)
