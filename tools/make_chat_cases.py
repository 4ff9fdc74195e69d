#!/usr/bin/env python3
"""Renders reference chat prompts for tests/fixtures/chat_cases.json with the model's own Jinja
chat template (tests/fixtures/qwen3-tiny/tokenizer_config.json), in a Jinja environment set up as
`transformers`' apply_chat_template sets it up (trim_blocks, lstrip_blocks, sandboxed).

usage: tools/make_chat_cases.py > tests/fixtures/chat_cases.json   (needs only jinja2)
"""
import json
import pathlib
import sys

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests/fixtures/qwen3-tiny/tokenizer_config.json"

S, U, A = "system", "user", "assistant"
CHATS = {
    "system_user": [(S, "You are helpful."), (U, "What is 2+2?")],
    "user_only": [(U, "Hello!\nHow are you?")],
    "multi_turn_think_in_history": [
        (S, "Be brief."), (U, "Hi"), (A, "<think>\nThe user greets.\n</think>\n\nHello!"),
        (U, "What is 3*3?")],
    "assistant_last_with_think": [
        (U, "Solve x+1=2"), (A, "<think>\nsubtract 1\n</think>\n\nx = 1")],
    "assistant_last_plain": [(U, "Say hi"), (A, "hi")],
    "assistants_after_last_user": [
        (U, "Q"), (A, "<think>r1</think>a1"), (A, "plain answer"), (A, "\n\nlast\n")],
    "think_without_open_tag": [(U, "Q"), (A, "reasoning only\n</think>\n\nanswer"), (U, "next")],
    "two_think_blocks": [(U, "Q"), (A, "<think>a</think>x<think>b</think>\n\ny")],
    "system_in_middle": [(U, "a"), (S, "new rules"), (U, "b")],
    "empty_contents": [(S, ""), (U, ""), (A, ""), (U, "")],
    "unicode_and_specials": [(U, "日本語 😀 <|im_end|> é"), (A, "答え <think>x</think>")],
    "tool_response_like_user_last": [
        (U, "real question"), (A, "<think>t</think>answer"),
        (U, "<tool_response>\n42\n</tool_response>")],
}


def main():
    template = json.loads(CONFIG.read_text())["chat_template"]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, **kw)
    compiled = env.from_string(template)
    cases = []
    for name, chat in CHATS.items():
        messages = [{"role": r, "content": c} for r, c in chat]
        for add_gen in (True, False):
            for thinking in (None, True, False):
                kwargs = {} if thinking is None else {"enable_thinking": thinking}
                text = compiled.render(messages=messages, add_generation_prompt=add_gen, **kwargs)
                cases.append({"name": name, "messages": messages, "add_generation_prompt": add_gen,
                              "enable_thinking": thinking is not False, "rendered": text})
    json.dump({"template": str(CONFIG.relative_to(ROOT)), "cases": cases}, sys.stdout,
              ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
