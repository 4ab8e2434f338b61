"""What every tutorial program shares: where the broker is, and the names it uses.

The programs are RabbitMQ's Python tutorials (pika), unchanged but for two things read
from the environment: the broker (``AMQP_URL``, default ``amqp://localhost``) and a
suffix for their queue and exchange names (``TUTORIAL_SUFFIX``, default none) so that
test runs sharing one RabbitMQ never meet.
"""

import os

import pika

SUFFIX = os.environ.get("TUTORIAL_SUFFIX", "")


def parameters() -> pika.URLParameters:
    return pika.URLParameters(os.environ.get("AMQP_URL", "amqp://localhost"))


def name(base: str) -> str:
    return base + SUFFIX
