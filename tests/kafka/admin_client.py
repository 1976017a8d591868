"""kafka-python's admin client: create topics with configs, describe configs, alter retention, add
partitions, delete topics. Usage: admin_client.py BOOTSTRAP. Prints one JSON object of what it saw."""
import json
import sys

from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
from kafka.errors import InvalidConfigurationError, TopicAlreadyExistsError

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
out = {}

admin.create_topics([
    NewTopic('orders', num_partitions=2, replication_factor=1,
             topic_configs={'retention.ms': '2592000000', 'cleanup.policy': 'compact,delete'}),
    NewTopic('audit', num_partitions=1, replication_factor=1),
])
try:
    admin.create_topics([NewTopic('orders', num_partitions=1, replication_factor=1)])
    out['exists_error'] = None
except TopicAlreadyExistsError as e:
    out['exists_error'] = type(e).__name__
try:
    admin.create_topics([NewTopic('bad', num_partitions=1, replication_factor=1,
                                  topic_configs={'retention.ms': 'soon'})])
    out['bad_config_error'] = None
except InvalidConfigurationError as e:
    out['bad_config_error'] = type(e).__name__
out['topics'] = sorted(t for t in admin.list_topics() if not t.startswith('_'))


def describe(topic):
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter='all')
    configs = res['topic'][topic]
    return {k: v for k, v in configs.items()}


before = describe('orders')
out['described'] = {k: {'value': v['value'], 'source': v['config_source'], 'read_only': v['read_only']}
                    for k, v in before.items()}
admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, 'orders', configs={'retention.ms': '604800000'})])
out['retention_after_alter'] = describe('orders')['retention.ms']['value']

admin.create_partitions({'orders': NewPartitions(total_count=4)})
described = admin.describe_topics(['orders'])
out['partitions_after_add'] = len(described[0]['partitions'])
producer = KafkaProducer(bootstrap_servers=[bootstrap], acks='all')
meta = producer.send('orders', key=b'k', value=b'to the new partition', partition=3).get(timeout=30)
out['new_partition_offset'] = [meta.partition, meta.offset]
producer.close()

admin.delete_topics(['audit'])
out['topics_after_delete'] = sorted(t for t in admin.list_topics() if not t.startswith('_'))
admin.close()
print(json.dumps(out, default=str))
