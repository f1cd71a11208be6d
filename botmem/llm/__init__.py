"""LLM clients. Only `litellm_client` imports litellm, and only when it is used."""
