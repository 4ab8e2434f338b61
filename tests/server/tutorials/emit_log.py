#!/usr/bin/env python
"""Tutorial 3, publish/subscribe: broadcast a log line."""
import sys

import pika
from common import name, parameters

connection = pika.BlockingConnection(parameters())
channel = connection.channel()

channel.exchange_declare(exchange=name('logs'), exchange_type='fanout')

message = ' '.join(sys.argv[1:]) or "info: Hello World!"
channel.basic_publish(exchange=name('logs'), routing_key='', body=message)
print(f" [x] Sent {message}")
connection.close()
