"""Text embeddings: the Embedder protocol, the offline default model, and a litellm bridge."""
