"""Test helpers shipped with botmem, for its own tests and for users'.

- `ScriptedLLM` (+ `reply`, `call`, `calls`, `raw_call`): script the model, record requests.
- `FakeAdapter`: a chat platform in memory.
- `FrozenClock`: time that moves only when told, for schedules and check-ins.
- `FakeOpenAIServer` (botmem.testing.openai_server): an OpenAI-compatible HTTP server on
  127.0.0.1 for end-to-end tests through the real LiteLLMClient.
"""

from botmem.testing.clock import FrozenClock
from botmem.testing.fake_adapter import FakeAdapter
from botmem.testing.scripted import ScriptedLLM, call, calls, raw_call, reply

__all__ = ["FakeAdapter", "FrozenClock", "ScriptedLLM", "call", "calls", "raw_call", "reply"]
