"""``amq broker serve``: the local broker over the AMQP 0-9-1 wire protocol.

``listener.Server`` accepts TCP connections; each is a ``connection.AMQPConnection``
(handshake, channels, heartbeats, errors as ``connection.close``/``channel.close``) over
one engine ``Connection``; each AMQP channel is a ``channel.ServerChannel`` over one engine
``Channel``. ``frames`` reads and writes frames with pamqp; ``auth`` checks logins;
``dispatch.Dispatcher`` hands ready messages to consumers, across connections and
processes; ``turn.Turn`` makes each turn of the event loop one store transaction, its
output sent once it commits; ``replyto`` is RabbitMQ's direct reply-to. Nothing here
changes the broker's semantics: the engine implements them.
"""
