"""Internal jobs on dramatiq (RabbitMQ broker with publisher confirms)."""
