#!/usr/bin/env python
"""Tutorial 1, "Hello World!": receive messages until Ctrl+C."""
import os
import sys

import pika
from common import name, parameters


def main():
    connection = pika.BlockingConnection(parameters())
    channel = connection.channel()

    channel.queue_declare(queue=name('hello'))

    def callback(ch, method, properties, body):
        print(f" [x] Received {body}")

    channel.basic_consume(queue=name('hello'), on_message_callback=callback, auto_ack=True)

    print(' [*] Waiting for messages. To exit press CTRL+C')
    channel.start_consuming()


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        print('Interrupted')
        try:
            sys.exit(0)
        except SystemExit:
            os._exit(0)
