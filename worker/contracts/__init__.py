"""The bus contracts: `refund.requested` in, `refund.completed` out, and their schemas."""
