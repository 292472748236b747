"""RabbitMQ (pika): the order system's bus."""
