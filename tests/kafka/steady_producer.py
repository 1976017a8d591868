"""An idempotent confluent-kafka producer sending steadily, printing each acknowledgement as it
arrives (one JSON line: [partition, offset, value]), so a test can kill the broker mid-stream.

Usage: steady_producer.py BOOTSTRAP TOPIC COUNT
Ends with {"done": true} once every record is acknowledged.
"""
import json
import sys
import time

from confluent_kafka import KafkaException, Producer

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = Producer({
    'bootstrap.servers': bootstrap,
    'enable.idempotence': True,
    'acks': 'all',
    'linger.ms': 2,
    'message.timeout.ms': 120000,
    'reconnect.backoff.ms': 50,
    'reconnect.backoff.max.ms': 500,
})


def on_delivery(err, msg):
    if err is not None:
        raise KafkaException(err)
    sys.stdout.write(json.dumps([msg.partition(), msg.offset(), msg.value().decode()]) + '\n')
    sys.stdout.flush()


for i in range(count):
    while True:
        try:
            p.produce(topic, value=('s-%d' % i).encode(), on_delivery=on_delivery)
            break
        except BufferError:
            p.poll(0.05)
    if i % 200 == 199:
        p.poll(0.01)
        time.sleep(0.01)
assert p.flush(120) == 0, 'undelivered records'
print(json.dumps({'done': True}))
