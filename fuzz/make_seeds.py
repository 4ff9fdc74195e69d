#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/seed-*) from the repository's
fixtures and cluster files, and hand-made inputs for the structured targets. Crashes found by
scripts/fuzz.sh (crash-*) are kept beside them; rerunning this leaves those alone."""
import json
import pathlib
import struct
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CORPUS = ROOT / "fuzz" / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data.encode() if isinstance(data, str) else data)


def safetensors(tensors, data, metadata=None):
    header = dict(tensors)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    write("safetensors", "f32", safetensors(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, {"format": "pt"}))
    write("safetensors", "mixed", safetensors(
        {"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
         "q": {"dtype": "I32", "shape": [1, 3], "data_offsets": [8, 20]},
         "s": {"dtype": "F16", "shape": [], "data_offsets": [20, 22]}}, b"\1" * 22))
    write("safetensors", "empty-tensor", safetensors(
        {"e": {"dtype": "U8", "shape": [0, 4], "data_offsets": [0, 0]}}, b""))
    # A fixture shard's header with its data cut off (a truncated download).
    shard = (FIXTURES / "qwen3-small-sharded" / "model-00003-of-00003.safetensors").read_bytes()
    n = struct.unpack("<Q", shard[:8])[0]
    write("safetensors", "fixture-truncated", shard[:8 + n + 64])


def json_seeds():
    index = FIXTURES / "qwen3-small-sharded" / "model.safetensors.index.json"
    write("safetensors_index", "fixture", index.read_text())
    write("safetensors_index", "small",
          json.dumps({"metadata": {"total_size": 8}, "weight_map": {"a": "model.safetensors"}}))
    for d in sorted(FIXTURES.iterdir()):
        if (d / "config.json").exists():
            write("model_config", d.name, (d / "config.json").read_text())
    write("model_config", "generation", (FIXTURES / "qwen3-tiny" / "generation_config.json").read_text())
    write("model_config", "generation-list", '{"eos_token_id": [151645, 151643], "top_k": 20}')
    for f in sorted((ROOT / "deploy").glob("**/*.yaml")):
        text = f.read_text()
        if "workers:" in text:  # cluster files, not Kubernetes or Helm manifests
            write("cluster_config", f.stem, text)


def text_seeds():
    cases = json.loads((FIXTURES / "tokenizer_cases.json").read_text())["cases"]
    for i, c in enumerate(cases):
        write("tokenizer", f"text-{i:02d}", b"\0" + c["text"].encode())
        write("tokenizer", f"ids-{i:02d}", b"\1" + struct.pack(f"<{len(c['ids'])}i", *c["ids"]))
    write("tokenizer", "special", b"\0<|im_start|>user\nhi<|im_end|>\n<think>\n\n</think>")
    write("tokenizer", "invalid-utf8", b"\0caf\xc3 \xe4\xbd \xf0\x9f\x98 e\xcc\x81 \xff")
    write("tokenizer", "split-char", b"\1" + struct.pack("<3i", 11319, 230, 232))
    write("chat_template", "qwen3", b"\3\0\1Hello\0\2<think>\nhm\n</think>\n\nHi!\0\1And now?")
    write("chat_template", "system", b"\1\0\0Be brief.\0\1What is 2+2?")
    write("chat_template", "chatml", b"\5{{ '<|im_start|>system\\nYou are a helpful assistant."
          b"<|im_end|>\\n' }}\0\1hi\0\2hello")
    write("chat_template", "tool", b"\1\0\3result")


def worker_seeds():
    # fuzz_input.h's encoding: a byte per small value (value + 8), then worker_step_fuzz.cc's
    # order: stage, step id, releases, sequences (slot, start, n, sampling?), ids mode, ipc,
    # and for stages 1 and 2 the hidden state (mode, fill value, one value, chunk size).
    def i(v):
        return bytes([v + 8])
    f_one, f_nan = b"\1", b"\5"
    prefill = b"\0" + b"\1" + b"\0" + b"\1" + i(0) + i(0) + i(3) + b"\0" + b"\0" + i(5) + i(6) + i(7) + b"\0"
    decode = b"\0" + b"\2" + b"\0" + b"\1" + i(0) + i(3) + i(1) + b"\0" + b"\0" + i(9) + b"\0"
    write("worker_step", "first-prefill-decode", prefill + decode)
    sampling = b"\1" + b"\3" + i(5) + b"\xa0" + b"\0" + b"\0" + b"\x01" + i(3)
    last = b"\2" + b"\1" + b"\0" + b"\1" + i(1) + i(0) + i(2) + sampling + b"\0" + i(5) + i(6) + b"\0"
    write("worker_step", "last-sample", last + b"\0" + f_one + b"\0" + f_one + b"\4")
    write("worker_step", "last-nan-hidden", last + b"\0" + f_nan + b"\0" + f_nan + b"\4")
    middle = b"\1" + b"\1" + b"\1" + i(2) + b"\1" + i(2) + i(0) + i(4) + b"\0" + b"\0" + i(1) * 4 + b"\0"
    write("worker_step", "middle-short-hidden", middle + b"\3" + i(-3) + f_one + b"\0" + f_one + b"\2" + b"\1")
    write("worker_step", "middle-stops-mid-chunk", middle + b"\4" + f_one + b"\0" + f_one + b"\1")
    write("worker_step", "bad-slots", b"\0\1\2" + i(-1) + i(9) + b"\2" + i(4) + i(0) + i(1) + b"\0"
          + i(-1) + i(0) + i(1) + b"\0\0" + i(1) + i(1) + b"\3" + i(8) + i(9))
    write("worker_step", "huge-lengths", b"\0\1\0\1" + i(0) + b"\xff\xff\xff\xff\x7f"
          + b"\xff\xff\xff\xff\x7f" + b"\0\1\xff\xff\xff\xff\x7f\0")


def request_seeds():
    proto = ROOT / "proto"
    requests = {
        "empty": "",
        "ids": "token_ids { ids: [1, 2, 3] } max_tokens: 8 temperature: 0.7 top_p: 0.9 seed: 1",
        "text": 'text: "Hello" stop: ["\\n", "END"] stop_token_ids: [5] logprobs: 3',
        "chat": 'chat { messages { role: "user" content: "hi" } enable_thinking: false } '
                "top_k: 40 min_p: 0.05 repetition_penalty: 1.1 ignore_eos: true",
        "bad": "token_ids { ids: [-1, 100000] } max_tokens: -2 temperature: -1 top_p: 0 "
               "min_p: 2 repetition_penalty: 1000 logprobs: 99",
    }
    for name, text in requests.items():
        data = subprocess.run(["protoc", f"-I{proto}", "--encode=layerpipe.v1.GenerateRequest",
                               "layerpipe/v1/layerpipe.proto"], input=text.encode(),
                              capture_output=True, check=True, cwd=proto).stdout
        write("request_validation", name, data)


if __name__ == "__main__":
    safetensors_seeds()
    json_seeds()
    text_seeds()
    worker_seeds()
    request_seeds()
