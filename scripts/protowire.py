# The protobuf wire format by hand, for clients on Debian's python3-grpcio without generated
# code (scripts/soak.py, tests/reflection_client.py): a length-delimited field out, the
# length-delimited fields of a message in.


def varint(data, i):
    value, shift = 0, 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not byte & 0x80:
            return value, i


def fields(data):
    """(number, payload) of a message's length-delimited fields (others skipped)."""
    i = 0
    while i < len(data):
        key, i = varint(data, i)
        kind = key & 7
        if kind == 0:
            _, i = varint(data, i)
        elif kind == 1:
            i += 8
        elif kind == 5:
            i += 4
        elif kind == 2:
            n, i = varint(data, i)
            yield key >> 3, data[i:i + n]
            i += n
        else:
            raise ValueError("unexpected wire type %d" % kind)


def field(number, payload):
    """A length-delimited protobuf field."""
    n, out = len(payload), bytearray([(number << 3) | 2])
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out + payload)
