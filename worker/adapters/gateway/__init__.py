"""The Alipay gateway over HTTP (requests): submissions, notify_verify and the refund query."""
