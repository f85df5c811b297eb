"""The HTTP API (FastAPI on uvicorn, ``movingdata api``): a process of its own over the same
topics, database and stores as the CLI. It never bypasses the chain: an upload is a staged put,
a delete is a delete request. Bearer tokens with a role and a tenant; errors as RFC 9457
problem+json."""
