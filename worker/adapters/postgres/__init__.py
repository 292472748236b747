"""PostgreSQL (psycopg 3): the pool, the migrations, and every statement of the ledger."""
