"""The load generator of `tierlog bench kafka`: librdkafka (confluent-kafka) clients.

  produce BOOTSTRAP TOPIC PRODUCERS RECORDS RECORD_BYTES
      PRODUCERS processes, producer i to partition i, acks=all, RECORDS in all. Prints
      {"elapsed_s", "records", "bytes"}: from the moment all producers start to the last ack.
  latency BOOTSTRAP TOPIC RATE SECONDS RECORD_BYTES
      One producer at RATE records/s for SECONDS; prints {"p50_us", "p99_us", "records"} of
      produce-to-ack latency.
  consume BOOTSTRAP TOPIC PARTITIONS
      assign() every partition from the earliest offset to its end; prints {"elapsed_s",
      "records", "bytes"} (bytes: keys and values).
  e2e BOOTSTRAP TOPIC RATE SECONDS
      A long-polling consumer and a producer (linger 0) at RATE records/s; prints {"p50_us",
      "p99_us", "records"} of produce-to-consume latency.
"""
import json
import multiprocessing as mp
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition


def quantiles(lat):
    lat.sort()
    if not lat:
        return {'p50_us': None, 'p99_us': None, 'records': 0}
    q = lambda f: lat[min(len(lat) - 1, int(round((len(lat) - 1) * f)))]
    return {'p50_us': q(0.5), 'p99_us': q(0.99), 'records': len(lat)}


def producer_proc(bootstrap, topic, partition, n, size, ready, go, out):
    p = Producer({'bootstrap.servers': bootstrap, 'acks': 'all', 'linger.ms': 5,
                  'batch.size': 1000000, 'queue.buffering.max.kbytes': 262144})
    value = bytes(i * 31 % 251 for i in range(size))
    # The messages are built before the start, and handed to librdkafka a thousand at a time
    # (produce_batch): the Python loop per record would otherwise cost more than the broker.
    msgs = [{'value': value, 'key': b'k%06d' % (i % 100000)} for i in range(n)]
    p.list_topics(topic, timeout=10)
    ready.set()
    go.wait()
    for j in range(0, n, 1000):
        chunk, deadline = msgs[j:j + 1000], time.monotonic() + 60
        while chunk:
            p.produce_batch(topic, chunk, partition=partition)
            # Messages librdkafka could not queue (its queue full) carry '_error': again, after
            # serving delivery reports, for at most a minute.
            failed = [(m, m.pop('_error')) for m in chunk if '_error' in m]
            chunk = [m for m, _ in failed]
            if chunk:
                assert time.monotonic() < deadline, f'cannot queue records: {failed[0][1]}'
                p.poll(0.001)
        p.poll(0)
    assert p.flush(120) == 0
    out.put(time.perf_counter())


def produce(bootstrap, topic, producers, records, size):
    ctx = mp.get_context('fork')
    go, out = ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(producers)]
    procs = [ctx.Process(target=producer_proc,
                         args=(bootstrap, topic, i, records // producers, size, readies[i], go, out))
             for i in range(producers)]
    for pr in procs:
        pr.start()
    for r in readies:
        r.wait()
    start = time.perf_counter()
    go.set()
    ends = [out.get() for _ in procs]
    for pr in procs:
        pr.join()
    n = records // producers * producers
    print(json.dumps({'elapsed_s': max(ends) - start, 'records': n, 'bytes': n * size}))


def latency(bootstrap, topic, rate, seconds, size):
    p = Producer({'bootstrap.servers': bootstrap, 'acks': 'all', 'linger.ms': 5})
    value = bytes(size)
    lat = []

    def done(err, msg, t0):
        assert err is None, err
        lat.append((time.perf_counter() - t0) * 1e6)

    p.list_topics(topic, timeout=10)
    n = int(rate * seconds)
    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        while time.perf_counter() < due:
            p.poll(0)
        t0 = time.perf_counter()
        p.produce(topic, value=value, partition=i % 8, on_delivery=lambda e, m, t0=t0: done(e, m, t0))
        p.poll(0)
    assert p.flush(60) == 0
    print(json.dumps(quantiles(lat)))


def consume(bootstrap, topic, partitions):
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'bench', 'enable.auto.commit': False,
                  'enable.partition.eof': True, 'fetch.max.bytes': 52428800,
                  'max.partition.fetch.bytes': 10485760, 'queued.max.messages.kbytes': 262144})
    c.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
    done, records, nbytes = set(), 0, 0
    start = None
    while len(done) < partitions:
        for m in c.consume(num_messages=10000, timeout=0.05):
            if m.error():
                done.add(m.partition())
                continue
            if start is None:
                start = time.perf_counter()
            records += 1
            nbytes += len(m.value()) + len(m.key() or b'')
    elapsed = time.perf_counter() - (start or time.perf_counter())
    c.close()
    print(json.dumps({'elapsed_s': elapsed, 'records': records, 'bytes': nbytes}))


def e2e(bootstrap, topic, rate, seconds):
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'bench-e2e', 'enable.auto.commit': False,
                  'fetch.wait.max.ms': 500, 'fetch.min.bytes': 1})
    md = c.list_topics(topic, timeout=10)
    parts = sorted(md.topics[topic].partitions)
    c.assign([TopicPartition(topic, p, -1) for p in parts])  # -1: OFFSET_END
    n = int(rate * seconds)
    lat = []

    def read():
        while len(lat) < n:
            m = c.poll(2)
            if m is not None and not m.error():
                lat.append((time.perf_counter_ns() - int(m.value())) / 1e3)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(1.0)  # the consumer's fetches are in flight
    p = Producer({'bootstrap.servers': bootstrap, 'acks': 'all', 'linger.ms': 0})
    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        while time.perf_counter() < due:
            p.poll(0)
        p.produce(topic, value=str(time.perf_counter_ns()).encode(), partition=i % len(parts))
        p.poll(0)
    p.flush(60)
    reader.join(timeout=60)
    c.close()
    print(json.dumps(quantiles(lat)))


mode, bootstrap, topic = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == 'produce':
    produce(bootstrap, topic, int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
elif mode == 'latency':
    latency(bootstrap, topic, float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
elif mode == 'consume':
    consume(bootstrap, topic, int(sys.argv[4]))
elif mode == 'e2e':
    e2e(bootstrap, topic, float(sys.argv[4]), float(sys.argv[5]))
else:
    sys.exit('unknown mode ' + mode)
