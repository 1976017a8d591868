"""aiokafka (old, non-flexible protocol versions): produce with acks='all', then consume from the
earliest offset. Usage: aiokafka_roundtrip.py BOOTSTRAP TOPIC COUNT. Prints {"sent": [...], "read": [...]}
as [partition, offset, value] lists."""
import asyncio
import json
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])


async def main():
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks='all', enable_idempotence=True)
    await producer.start()
    sent = []
    try:
        partitions = sorted(await producer.partitions_for(topic))
        for i in range(count):
            md = await producer.send_and_wait(topic, key=b'k%d' % (i % 7), value=b'aio-%d' % i)
            sent.append([md.partition, md.offset, 'aio-%d' % i])
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset='earliest')
    await consumer.start()
    read = []
    try:
        parts = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        while len(read) < count:
            batch = await consumer.getmany(timeout_ms=5000)
            if not batch:
                break
            for tp, msgs in batch.items():
                read.extend([m.partition, m.offset, m.value.decode()] for m in msgs)
    finally:
        await consumer.stop()
    print(json.dumps({'sent': sent, 'read': read}))


asyncio.run(main())
