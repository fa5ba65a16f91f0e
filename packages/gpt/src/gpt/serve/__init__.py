"""gpt's serving stage: any gpt run behind OpenAI's HTTP API.

    server.py       `gpt serve`: the FastAPI app, health, metrics, the chat page (static/)
    openai_api.py   the request and response schema of the OpenAI API, as pydantic models
    scheduler.py    continuous batching: every running request decoded together
    slot_cache.py   a KV cache with one row (slot) per request, each with its own length

Nothing is imported here, so `import gpt.serve.scheduler` needs no web framework.
"""
