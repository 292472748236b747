"""alipay-refund-worker: refund requests in from the bus, Alipay batch refunds out, results back."""

__version__ = "0.1.0"
