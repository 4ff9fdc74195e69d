#!/usr/bin/python3
# A grpc.reflection.v1 client written on Debian's python3-grpcio alone (no generated code):
# requests are encoded by hand. Usage: reflection_client.py HOST:PORT SYMBOL...
# Prints the services the server lists, then for each symbol the files (names) of the answer,
# or "error" when the server cannot resolve it.
import re
import sys

import grpc


def field(number, payload):
    """A length-delimited protobuf field."""
    n, out = len(payload), bytearray([(number << 3) | 2])
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out + payload)


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
