#!/usr/bin/python3
# A client of a layerpipe server over TLS, on Debian's python3-grpcio alone (no generated code):
# calls each METHOD (a full path, e.g. /layerpipe.v1.Inference/GetModelInfo) with an empty
# request and prints "METHOD CODE" for each; /grpc.reflection.v1.ServerReflection/... is asked
# to list the services. Usage:
#   tls_client.py HOST:PORT [--ca F] [--cert F --key F] [--token T] METHOD...
# Without --ca and --cert the channel is plaintext.
import argparse

import grpc

LIST_SERVICES = b"\x3a\x01*"  # ServerReflectionRequest{list_services: "*"}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("endpoint")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--token")
    p.add_argument("methods", nargs="+")
    a = p.parse_args()
    if a.ca or a.cert:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read(a.ca) if a.ca else None,
            private_key=read(a.key) if a.key else None,
            certificate_chain=read(a.cert) if a.cert else None)
        channel = grpc.secure_channel(a.endpoint, credentials)
    else:
        channel = grpc.insecure_channel(a.endpoint)
    metadata = [("authorization", "Bearer " + a.token)] if a.token else None
    for method in a.methods:
        identity = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            if "ServerReflection" in method:
                call = channel.stream_stream(method, **identity)
                list(call(iter([LIST_SERVICES]), timeout=10, metadata=metadata))
            else:
                channel.unary_unary(method, **identity)(b"", timeout=10, metadata=metadata)
            print(method, "OK")
        except grpc.RpcError as e:
            print(method, e.code().name)


if __name__ == "__main__":
    main()
