"""One member of a consumer group, driven by a test over stdin and stdout.

Usage:
  group_member.py BOOTSTRAP LIB TOPIC GROUP [INSTANCE_ID]
      LIB is `confluent` (confluent-kafka, librdkafka) or `kafka-python`. The member subscribes to
      TOPIC in GROUP (enable.auto.commit off, auto.offset.reset earliest, a synchronous commit
      after each record; a static member with INSTANCE_ID as its group.instance.id). It prints
      one JSON line per event, flushed at once:
        {"event": "assigned", "partitions": [...]}     a rebalance gave it these partitions
        {"event": "revoked", "partitions": [...]}      a rebalance took them away
        {"event": "record", "partition": P, "offset": O, "value": V}   processed (then committed)
        {"event": "commit_failed", "partition": P, "offset": O, "error": E}
                                                       its commit was refused (a rebalance came
                                                       first): the next owner reads it again
        {"event": "closed"}                            after `close` on stdin (or its end)
      `close` closes the consumer the library's way: a dynamic member leaves its group, a
      static one does not.
"""
import json
import logging
import os
import sys
import threading

if os.environ.get('TIERLOG_TEST_CLIENT_LOG'):
    # The client library's own log on stderr (kafka-python's logging; librdkafka's debug contexts).
    logging.basicConfig(level=logging.DEBUG, format='%(asctime)s %(threadName)s %(name)s %(message)s')

stop = threading.Event()


def emit(**kv):
    print(json.dumps(kv), flush=True)


def watch_stdin():
    for line in sys.stdin:
        if line.strip() == 'close':
            break
    stop.set()


def confluent(bootstrap, topic, group, instance):
    from confluent_kafka import Consumer, KafkaError, KafkaException
    REFUSED = (KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID)
    conf = {
        'bootstrap.servers': bootstrap,
        'group.id': group,
        'enable.auto.commit': False,
        'auto.offset.reset': 'earliest',
        'session.timeout.ms': 10000,
        'heartbeat.interval.ms': 500,
    }
    if instance:
        conf['group.instance.id'] = instance
    c = Consumer(conf)

    def on_assign(_c, parts):
        emit(event='assigned', partitions=sorted(p.partition for p in parts))

    def on_revoke(_c, parts):
        emit(event='revoked', partitions=sorted(p.partition for p in parts))

    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    while not stop.is_set():
        msg = c.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        emit(event='record', partition=msg.partition(), offset=msg.offset(), value=msg.value().decode())
        try:
            c.commit(message=msg, asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() not in REFUSED:
                raise
            emit(event='commit_failed', partition=msg.partition(), offset=msg.offset(), error=e.args[0].name())
    c.close()


def kafka_python(bootstrap, topic, group, instance):
    from kafka import KafkaConsumer, ConsumerRebalanceListener
    from kafka.errors import CommitFailedError
    from kafka.structs import OffsetAndMetadata

    class Listener(ConsumerRebalanceListener):
        def on_partitions_assigned(self, assigned):
            emit(event='assigned', partitions=sorted(tp.partition for tp in assigned))

        def on_partitions_revoked(self, revoked):
            emit(event='revoked', partitions=sorted(tp.partition for tp in revoked))

    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        group_instance_id=instance,
        enable_auto_commit=False,
        auto_offset_reset='earliest',
        session_timeout_ms=10000,
        heartbeat_interval_ms=500,
    )
    # kafka-python 3.0.12 as leader rejoins whenever its metadata snapshot moves (its first join
    # assigns nothing if it has no metadata yet), and if the answer to such a rejoin arrives
    # after poll() stopped waiting it never applies it: the member sits with no partitions and
    # no heartbeats until its session expires (the same against Kafka). The topic's metadata
    # first, and long polls, keep that window small.
    c.partitions_for_topic(topic)
    c.subscribe([topic], listener=Listener())
    while not stop.is_set():
        for tp, records in c.poll(timeout_ms=1000).items():
            for r in records:
                emit(event='record', partition=tp.partition, offset=r.offset, value=r.value.decode())
                try:
                    c.commit({tp: OffsetAndMetadata(r.offset + 1, '', -1)})
                except CommitFailedError as e:
                    emit(event='commit_failed', partition=tp.partition, offset=r.offset, error=str(e))
    c.close()


if __name__ == '__main__':
    bootstrap, lib, topic, group = sys.argv[1:5]
    instance = sys.argv[5] if len(sys.argv) > 5 else None
    threading.Thread(target=watch_stdin, daemon=True).start()
    {'confluent': confluent, 'kafka-python': kafka_python}[lib](bootstrap, topic, group, instance)
    emit(event='closed')
