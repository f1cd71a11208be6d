"""The agent: memory blocks, tools, the step loop, context compilation and summarization."""
