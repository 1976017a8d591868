"""confluent-kafka (librdkafka) clients.

Usage:
  librdkafka_clients.py BOOTSTRAP produce TOPIC PER_CODEC T0_MS SPAN_MS
      An idempotent producer per codec (none, gzip, snappy, lz4, zstd) sends PER_CODEC records each,
      stamped evenly from T0_MS over SPAN_MS. Prints {"acks": [[partition, offset, ts, value], ...]}.
  librdkafka_clients.py BOOTSTRAP read TOPIC
      A consumer with assign() reads every partition from the earliest offset to its end. Prints
      {"records": [[partition, offset, ts, key, value], ...]}.
  librdkafka_clients.py BOOTSTRAP times TOPIC T_MS COUNT
      offsets_for_times(T_MS) for every partition, then COUNT records read from each offset found.
      Prints {"offsets": {partition: offset}, "records": {partition: [[offset, ts, value], ...]}}.
"""
import json
import sys

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd']


def partitions(consumer, topic):
    md = consumer.list_topics(topic, timeout=10)
    return sorted(md.topics[topic].partitions)


def consumer(bootstrap):
    return Consumer({
        'bootstrap.servers': bootstrap,
        'group.id': 'librdkafka-assign',
        'enable.auto.commit': False,
        'enable.partition.eof': True,
        'auto.offset.reset': 'earliest',
    })


def produce(bootstrap, topic, per_codec, t0, span):
    total = per_codec * len(CODECS)
    acks = []

    def on_delivery(err, msg):
        if err is not None:
            raise KafkaException(err)
        acks.append([msg.partition(), msg.offset(), msg.timestamp()[1], msg.value().decode()])

    n = 0
    for codec in CODECS:
        p = Producer({
            'bootstrap.servers': bootstrap,
            'enable.idempotence': True,
            'acks': 'all',
            'compression.type': codec,
            'linger.ms': 5,
            'batch.size': 16384,
        })
        for i in range(per_codec):
            ts = t0 + n * span // total
            value = json.dumps({'codec': codec, 'i': i, 'n': n})
            p.produce(topic, key=('%s-%d' % (codec, i)).encode(), value=value.encode(), timestamp=ts,
                      on_delivery=on_delivery)
            p.poll(0)
            n += 1
        assert p.flush(30) == 0, 'undelivered records'
    print(json.dumps({'acks': acks}))


def read(bootstrap, topic):
    c = consumer(bootstrap)
    parts = partitions(c, topic)
    c.assign([TopicPartition(topic, p, -2) for p in parts])  # -2: OFFSET_BEGINNING
    done, records = set(), []
    while len(done) < len(parts):
        m = c.poll(10)
        assert m is not None, 'no message within 10 s'
        if m.error():
            assert m.error().code() == -191, m.error()  # _PARTITION_EOF
            done.add(m.partition())
            continue
        records.append([m.partition(), m.offset(), m.timestamp()[1], m.key().decode(), m.value().decode()])
    c.close()
    print(json.dumps({'records': records}))


def times(bootstrap, topic, t, count):
    c = consumer(bootstrap)
    parts = partitions(c, topic)
    found = c.offsets_for_times([TopicPartition(topic, p, t) for p in parts], timeout=10)
    offsets = {tp.partition: tp.offset for tp in found}
    c.assign([TopicPartition(topic, p, o) for p, o in offsets.items() if o >= 0])
    out = {p: [] for p in offsets}
    while any(len(v) < count for p, v in out.items() if offsets[p] >= 0):
        m = c.poll(10)
        assert m is not None, 'no message within 10 s'
        if m.error():
            continue
        if len(out[m.partition()]) < count:
            out[m.partition()].append([m.offset(), m.timestamp()[1], m.value().decode()])
    c.close()
    print(json.dumps({'offsets': offsets, 'records': out}))


bootstrap, mode, topic = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == 'produce':
    produce(bootstrap, topic, int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
elif mode == 'read':
    read(bootstrap, topic)
elif mode == 'times':
    times(bootstrap, topic, int(sys.argv[4]), int(sys.argv[5]))
else:
    sys.exit('unknown mode ' + mode)
