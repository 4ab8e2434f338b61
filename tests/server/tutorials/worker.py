#!/usr/bin/env python
"""Tutorial 2, work queues: a worker, one task at a time (fair dispatch)."""
import time

import pika
from common import name, parameters

connection = pika.BlockingConnection(parameters())
channel = connection.channel()

channel.queue_declare(queue=name('task_queue'), durable=True)
print(' [*] Waiting for messages. To exit press CTRL+C')


def callback(ch, method, properties, body):
    print(f" [x] Received {body.decode()}")
    time.sleep(body.count(b'.'))
    print(" [x] Done")
    ch.basic_ack(delivery_tag=method.delivery_tag)


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue=name('task_queue'), on_message_callback=callback)

try:
    channel.start_consuming()
except KeyboardInterrupt:
    print('Interrupted')
