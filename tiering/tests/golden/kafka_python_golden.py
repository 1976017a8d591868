#!/usr/bin/env python3
"""Golden RecordBatch v2 bytes from an independent implementation: kafka-python's
DefaultRecordBatchBuilder / DefaultRecordBatch (pure Python, with python-snappy, lz4 and zstandard
for the codecs).

  generate DIR   write kafka-python-<codec>.bin for every codec, and records.json: the records
                 they hold (tierlog's tests decode the .bin files and compare).
  verify FILE..  decode files of concatenated batches written by tierlog, check every CRC, and
                 print one JSON line per record (tierlog's tests compare them with what they wrote).

Pinned versions (scripts/test.sh installs them with --require-hashes): kafka-python 3.0.12,
python-snappy 0.7.3, cramjam 2.14.0, lz4 4.4.5, zstandard 0.25.0.
"""
import base64
import json
import sys
from pathlib import Path

from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def b64(b):
    return None if b is None else base64.b64encode(bytes(b)).decode()


def records():
    """Fixed records covering the format's corners: null key, null value (tombstone), headers with
    a null value, binary and UTF-8 bytes, a value long enough for multi-byte varints, and
    timestamps that go backwards."""
    base = 1_700_000_000_000
    out = []
    for i in range(40):
        key = None if i % 7 == 3 else f"key-{i % 11}".encode()
        if i % 9 == 4:
            value = None
        elif i % 5 == 0:
            value = bytes(range(256)) * 12  # 3072 bytes, binary
        else:
            value = f"value {i} \u00e9\u00e8 \u2603".encode() * (1 + i % 4)
        headers = []
        if i % 3 == 0:
            headers = [("trace", f"t-{i}".encode()), ("empty", b""), ("null", None)]
        ts = base + i * 1000 - (5000 if i % 10 == 6 else 0)
        out.append({"key": key, "value": value, "headers": headers, "timestamp": ts})
    return out


def build(codec, recs):
    b = DefaultRecordBatchBuilder(
        magic=2, compression_type=CODECS[codec], is_transactional=False,
        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for i, r in enumerate(recs):
        assert b.append(i, r["timestamp"], r["key"], r["value"], r["headers"]) is not None
    return bytes(b.build())


def generate(outdir):
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    recs = records()
    for codec in CODECS:
        data = build(codec, recs)
        batch = DefaultRecordBatch(data)
        assert batch.compression_type == CODECS[codec], f"{codec}: builder fell back to no compression"
        (outdir / f"kafka-python-{codec}.bin").write_bytes(data)
    described = [
        {"offset": i, "timestamp": r["timestamp"], "key": b64(r["key"]), "value": b64(r["value"]),
         "headers": [[k, b64(v)] for k, v in r["headers"]]}
        for i, r in enumerate(recs)
    ]
    (outdir / "records.json").write_text(json.dumps(described, indent=1) + "\n")


def verify(paths):
    for p in paths:
        data = memoryview(Path(p).read_bytes())
        pos = 0
        while pos < len(data):
            length = int.from_bytes(data[pos + 8:pos + 12], "big", signed=True) + 12
            batch = DefaultRecordBatch(bytes(data[pos:pos + length]))
            if not batch.validate_crc():
                sys.exit(f"{p}: batch at byte {pos}: CRC check failed")
            for rec in batch:
                print(json.dumps({
                    "offset": rec.offset, "timestamp": rec.timestamp, "key": b64(rec.key),
                    "value": b64(rec.value), "headers": [[k, b64(v)] for k, v in rec.headers],
                    "compression": batch.compression_type,
                }))
            pos += length


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "generate":
        generate(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "verify":
        verify(sys.argv[2:])
    else:
        sys.exit(__doc__)
