#!/usr/bin/python3
# A grpc.reflection.v1 client written on Debian's python3-grpcio alone (no generated code):
# requests are encoded by hand. Usage: reflection_client.py HOST:PORT SYMBOL...
# Prints the services the server lists, then for each symbol the files (names) of the answer,
# or "error" when the server cannot resolve it.
import os
import re
import sys

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from protowire import field  # noqa: E402


def main():
    endpoint, symbols = sys.argv[1], sys.argv[2:]
    channel = grpc.insecure_channel(endpoint)
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda b: b, response_deserializer=lambda b: b)
    requests = [field(7, b"*")] + [field(4, s.encode()) for s in symbols]
    responses = list(call(iter(requests), timeout=10))
    names = re.findall(rb"[A-Za-z0-9_.]+\.(?:v1alpha|v1)\.[A-Za-z]+", responses[0])
    print("services:", " ".join(sorted(set(n.decode() for n in names))))
    for symbol, answer in zip(symbols, responses[1:]):
        files = re.findall(rb"[a-z0-9_/]+\.proto", answer)
        print(symbol + ":", " ".join(sorted(set(f.decode() for f in files))) or "error")


if __name__ == "__main__":
    main()
