"""TinyBERT data augmentation (Jiao et al., 2020, section 3.1 and Algorithm 1), batched and cached on disk.

Each word of an example gets a list of candidate replacements: a masked language model's top-K predictions when the
word is a single word piece (`mlm`), and its nearest whole words by cosine in the model's input word-embedding
matrix when it is several pieces (`embedding`). A model folder without a masked-LM head (all-MiniLM-L6-v2 is a bare
BertModel) uses the embedding neighbours for every word. Every new sentence replaces each candidate word by one of
its candidates with probability p_t; an example yields N_a new sentences, all with its label.

Where the released code made one batch-size-1 model call per word with autograd on, here every masked copy of a
batch of sentences goes through one forward pass under `torch.inference_mode`, the LM head runs on the masked
positions only, and the neighbours of all distinct words of the corpus come from one chunked matrix product.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import numpy as np

from tinybert_edge.config import AugmentConfig
from tinybert_edge.data import sample
from tinybert_edge.errors import DataError, ModelError
from tinybert_edge.io import atomic_path, sha256_tree, write_json_atomic
from tinybert_edge.training.loop import ProgressLog

log = logging.getLogger(__name__)

# Bumped whenever a change here changes what augment() writes, so that older cache entries are not reused.
ALGORITHM_VERSION = 2
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Word:
    """One word of a sentence as the tokenizer's pre-tokenizer splits it (whitespace and punctuation)."""

    start: int  # character span in the sentence's text
    end: int
    first_piece: int  # index of its first word piece in Sentence.piece_ids
    piece_ids: tuple[int, ...]
    replaceable: bool  # alphabetic and known to the vocabulary; punctuation, numbers and [UNK] stay as they are


@dataclass(frozen=True)
class Sentence:
    text: str
    piece_ids: tuple[int, ...]
    words: tuple[Word, ...]


Target = tuple[int, int]  # (sentence index in the batch, word index in the sentence)


class CandidateGenerator(Protocol):
    """Gives each target word its candidate replacements (vocabulary tokens, never the word itself)."""

    name: str

    def candidates(self, sentences: Sequence[Sentence], targets: Sequence[Target]) -> list[list[str]]: ...


def split_words(tokenizer: Any, texts: Sequence[str]) -> list[Sentence]:
    """Tokenize `texts` without special tokens and group the word pieces into words, with character spans."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError("augmentation needs a fast tokenizer (tokenizer.json, or vocab.txt that transformers can "
                         "convert); save the model folder's tokenizer with a recent transformers")
    encoded = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                        verbose=False)
    unknown = tokenizer.unk_token_id
    sentences = []
    for i, text in enumerate(texts):
        ids, offsets, word_ids = encoded["input_ids"][i], encoded["offset_mapping"][i], encoded.word_ids(i)
        words: list[Word] = []
        first = 0
        for position in range(1, len(ids) + 1):
            if position < len(ids) and word_ids[position] == word_ids[first]:
                continue
            start, end = offsets[first][0], offsets[position - 1][1]
            pieces = tuple(ids[first:position])
            surface = text[start:end]
            words.append(Word(start, end, first, pieces, surface.isalpha() and unknown not in pieces))
            first = position
        sentences.append(Sentence(text, tuple(ids), tuple(words)))
    return sentences


def whole_word_mask(tokenizer: Any, vocab_size: int) -> np.ndarray:
    """True for vocabulary entries that can stand as a word on their own: alphabetic, not a `##` continuation
    piece, not a special or `[unusedN]` token, and not a lone letter other than "a" and "i" (embedding neighbours
    otherwise offer "s" for "was": the vocabulary's single letters exist to spell unknown words, not as words)."""
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    special = set(tokenizer.all_special_ids)
    mask = np.zeros(vocab_size, dtype=bool)
    for index in range(vocab_size):
        token = by_id.get(index)
        mask[index] = (token is not None and index not in special and token.isalpha()
                       and (len(token) > 1 or token.lower() in ("a", "i")))
    return mask


class EmbeddingNeighbours:
    """Nearest whole words by cosine similarity in the input word-embedding matrix.

    A word of several pieces is represented by the mean of its pieces' embeddings. Neighbours are computed for many
    words at once (one matrix product per chunk of words) and kept, so each distinct word is looked up once.
    """

    name = "embedding"

    def __init__(self, embeddings: Any, vocabulary: Sequence[str | None], whole_words: np.ndarray, top_k: int,
                 chunk: int = 1024) -> None:
        import torch

        self.weights = embeddings.detach().float()
        self.vocabulary = vocabulary
        self.allowed_ids = torch.from_numpy(np.flatnonzero(whole_words))
        self.unit = torch.nn.functional.normalize(self.weights[self.allowed_ids], dim=1)
        self.column = {int(token): column for column, token in enumerate(self.allowed_ids.tolist())}
        self.top_k = top_k
        self.chunk = chunk
        self._neighbours: dict[tuple[int, ...], list[str]] = {}

    def prepare(self, words: Iterable[tuple[int, ...]]) -> None:
        """Compute and keep the neighbours of every word (a tuple of piece ids) not seen before."""
        import torch

        missing = list(dict.fromkeys(w for w in words if w not in self._neighbours))
        k = min(self.top_k, max(0, len(self.allowed_ids) - 1))
        with torch.inference_mode():
            for start in range(0, len(missing), self.chunk):
                block = missing[start : start + self.chunk]
                queries = torch.stack([self.weights[list(w)].mean(0) for w in block])
                scores = torch.nn.functional.normalize(queries, dim=1) @ self.unit.T
                for row, word in enumerate(block):  # never the word itself, nor one of its own pieces
                    own = [self.column[p] for p in word if p in self.column]
                    if own:
                        scores[row, own] = float("-inf")
                top = scores.topk(k, dim=1).indices if k else torch.empty((len(block), 0), dtype=torch.long)
                for word, columns in zip(block, top.tolist()):
                    ids = self.allowed_ids[columns].tolist()
                    self._neighbours[word] = [self.vocabulary[i] for i in ids]

    def candidates(self, sentences: Sequence[Sentence], targets: Sequence[Target]) -> list[list[str]]:
        words = [sentences[s].words[w].piece_ids for s, w in targets]
        self.prepare(words)
        return [list(self._neighbours[w]) for w in words]


class MaskedLMCandidates:
    """Top-K predictions of a masked language model for single-piece words.

    As in the released code, the input is "[CLS] sentence with the word masked [SEP] original sentence [SEP]", so
    the predictions stay close to the original meaning. One masked copy per target word; all copies of a batch go
    through the encoder in one forward pass, and the LM head runs only on the masked positions.
    """

    name = "mlm"

    def __init__(self, model: Any, tokenizer: Any, vocabulary: Sequence[str | None], whole_words: np.ndarray,
                 top_k: int, max_length: int) -> None:
        import torch

        self.model = model.eval()
        self.vocabulary = vocabulary
        self.blocked = torch.from_numpy(~whole_words)
        self.top_k = min(top_k, int(whole_words.sum()) - 1)
        positions = getattr(model.config, "max_position_embeddings", max_length)
        self.window = (min(max_length, positions) - 3) // 2  # pieces of each segment that fit
        self.cls, self.sep, self.mask = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id
        self.device = next(model.parameters()).device

    def applies(self, sentence: Sentence, word: Word) -> bool:
        return len(word.piece_ids) == 1 and word.first_piece < self.window

    def inputs(self, sentence: Sentence, word: Word) -> tuple[list[int], list[int], int]:
        """Token ids, token types and the masked position of one target's masked copy."""
        pieces = list(sentence.piece_ids[: self.window])
        masked = list(pieces)
        masked[word.first_piece] = self.mask
        ids = [self.cls, *masked, self.sep, *pieces, self.sep]
        types = [0] * (len(pieces) + 2) + [1] * (len(pieces) + 1)
        return ids, types, 1 + word.first_piece

    def candidates(self, sentences: Sequence[Sentence], targets: Sequence[Target]) -> list[list[str]]:
        import torch

        if not targets:
            return []
        rows = [self.inputs(sentences[s], sentences[s].words[w]) for s, w in targets]
        width = max(len(ids) for ids, _, _ in rows)
        input_ids = torch.zeros((len(rows), width), dtype=torch.long)
        token_types = torch.zeros_like(input_ids)
        attention = torch.zeros_like(input_ids)
        for r, (ids, types, _) in enumerate(rows):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            token_types[r, : len(ids)] = torch.tensor(types)
            attention[r, : len(ids)] = 1
        masked_at = torch.tensor([position for _, _, position in rows])
        original = torch.tensor([sentences[s].words[w].piece_ids[0] for s, w in targets])
        with torch.inference_mode():
            hidden = self.model.bert(input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
                                     token_type_ids=token_types.to(self.device)).last_hidden_state
            logits = self.model.cls(hidden[torch.arange(len(rows), device=self.device), masked_at.to(self.device)])
            logits = logits.float().cpu()
            logits.masked_fill_(self.blocked[: logits.shape[1]], float("-inf"))
            logits[torch.arange(len(rows)), original] = float("-inf")
            top = logits.topk(self.top_k, dim=1).indices.tolist()
        return [[self.vocabulary[i] for i in row] for row in top]


def weight_keys(folder: Path) -> list[str] | None:
    """Parameter names stored in the folder's safetensors weights, or None when it has no safetensors file."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return list(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}))
    single = folder / "model.safetensors"
    if single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), framework="pt") as handle:
            return list(handle.keys())
    return None


def has_masked_lm_head(folder: Path) -> bool:
    """True when the weights hold BERT's masked-LM head (`cls.predictions.*`); without safetensors, when the
    config's architectures name one."""
    keys = weight_keys(folder)
    if keys is not None:
        return any(key.startswith("cls.predictions.") for key in keys)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in config.get("architectures") or [])


def load_generators(folder: Path, tokenizer: Any,
                    config: AugmentConfig) -> tuple[MaskedLMCandidates | None, EmbeddingNeighbours]:
    """The generators this folder supports, logging which ones run and why."""
    import torch

    with_head = has_masked_lm_head(folder)
    use_mlm = with_head and config.generator == "auto"
    kwargs = {"use_safetensors": (folder / "model.safetensors").is_file()
              or (folder / "model.safetensors.index.json").is_file(), "trust_remote_code": False}
    if use_mlm:
        from transformers import BertForMaskedLM

        model = BertForMaskedLM.from_pretrained(folder, **kwargs)
    else:
        from transformers import AutoModel

        model = AutoModel.from_pretrained(folder, **kwargs)
    model.eval()
    embeddings = model.get_input_embeddings().weight
    vocabulary = [None] * embeddings.shape[0]
    for token, index in tokenizer.get_vocab().items():
        if index < len(vocabulary):
            vocabulary[index] = token
    whole = whole_word_mask(tokenizer, embeddings.shape[0])
    if whole.sum() < 2:
        raise ModelError(f"the vocabulary of '{folder}' has fewer than two whole-word entries; augmentation needs "
                         "a word-piece vocabulary with real words")
    neighbours = EmbeddingNeighbours(embeddings, vocabulary, whole, config.top_k)
    if not use_mlm:
        reason = f"no masked-LM head in {folder}" if not with_head else "asked for with generator='embedding'"
        log.info("augment: generators = embedding (%s)", reason)
        return None, neighbours
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    masked_lm = MaskedLMCandidates(model.to(device), tokenizer, vocabulary, whole, config.top_k, config.max_length)
    log.info("augment: generators = mlm (single-piece words), embedding (multi-piece words) from %s", folder)
    return masked_lm, neighbours


def word_candidates(sentences: Sequence[Sentence], masked_lm: MaskedLMCandidates | None,
                    neighbours: EmbeddingNeighbours) -> dict[Target, list[str]]:
    """Candidates for every replaceable word of `sentences`: one batched MLM call plus the embedding neighbours."""
    for_mlm: list[Target] = []
    for_neighbours: list[Target] = []
    for s, sentence in enumerate(sentences):
        for w, word in enumerate(sentence.words):
            if not word.replaceable:
                continue
            (for_mlm if masked_lm is not None and masked_lm.applies(sentence, word) else for_neighbours).append((s, w))
    found = dict(zip(for_neighbours, neighbours.candidates(sentences, for_neighbours)))
    if masked_lm is not None:
        found.update(zip(for_mlm, masked_lm.candidates(sentences, for_mlm)))
    return found


def _match_case(candidate: str, original: str) -> str:
    if original.isupper() and len(original) > 1:
        return candidate.upper()
    if original[:1].isupper():
        return candidate[:1].upper() + candidate[1:]
    return candidate


def new_sentences(sentence: Sentence, candidates: dict[int, list[str]], config: AugmentConfig,
                  rng: np.random.Generator) -> list[str]:
    """N_a copies of `sentence`, each word with candidates replaced with probability p_t (Algorithm 1)."""
    slots = [(w, sentence.words[w], options) for w, options in sorted(candidates.items()) if options]
    copies = []
    for _ in range(config.n_augmented):
        draws = rng.random(len(slots))
        picks = rng.integers(0, [len(options) for _, _, options in slots]) if slots else []
        parts, cursor = [], 0
        for (_, word, options), draw, pick in zip(slots, draws, picks):
            if draw < config.p_t:
                parts.append(sentence.text[cursor : word.start])
                parts.append(_match_case(options[pick], sentence.text[word.start : word.end]))
                cursor = word.end
        parts.append(sentence.text[cursor:])
        copies.append("".join(parts))
    return copies


def cache_key(folder: Path, data: Any, config: AugmentConfig) -> str:
    from tinybert_edge.training.finetune import data_digest

    return hashlib.sha256(json.dumps({
        "version": ALGORITHM_VERSION,
        "model": sha256_tree(folder, ("*.json", "*.safetensors", "*.txt")),
        "data": data_digest(data),
        "config": asdict(config),
    }, sort_keys=True).encode()).hexdigest()[:16]


def _chunk_path(cache: Path, index: int) -> Path:
    return cache / f"chunk-{index:05d}.jsonl"


def _rows(data: Any, index: int, texts: Sequence[str]) -> list[dict[str, Any]]:
    """JSONL rows of one example: the original first, then its augmented copies (same label, same second text)."""
    rows = []
    for copy_number, text in enumerate(texts):
        row: dict[str, Any] = {"text": text} if data.text_pairs is None else {
            "sentence1": text, "sentence2": data.text_pairs[index]}
        row.update({"label": data.label_of(index), "source_index": index, "augmented": copy_number > 0})
        rows.append(row)
    return rows


def _write_chunk(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _assemble(data: Any, rows: list[dict[str, Any]], source: str) -> Any:
    pairs = data.text_pairs is not None
    return data.with_examples(texts=[row["sentence1" if pairs else "text"] for row in rows],
                              labels=[row["label"] for row in rows],
                              text_pairs=[row["sentence2"] for row in rows] if pairs else None, source=source)


def augment(
    model_folder: str | Path,
    data: Any,
    config: AugmentConfig = AugmentConfig(),
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Any:
    """Return `data`'s examples, each followed by `config.n_augmented` augmented copies with the same label (class
    or score: any task's data with `label_of` and `with_examples`).

    Candidates come from `model_folder` (a BERT folder; with a masked-LM head both generators run, without one the
    embedding neighbours alone). For sentence pairs the first text is augmented and the second kept. The result is
    cached under `<cache_dir>/augmented/<key>` (key: model weights, data, settings) in chunks written atomically:
    an interrupted call resumes from the last finished chunk, and a finished one returns from the cache at once.
    """
    from tqdm.auto import tqdm

    from tinybert_edge.training.finetune import default_cache_dir
    from tinybert_edge.models import check_model_folder, load_tokenizer

    folder = check_model_folder(model_folder, role="augmentation model")
    if len(data) == 0:
        raise DataError(f"{data.source}: no examples to augment; point --data at a file with examples")
    data = sample(data, config.max_examples, config.seed)
    cache = Path(cache_dir or default_cache_dir()) / "augmented" / cache_key(folder, data, config)
    source = f"{data.source}[augmented x{config.n_augmented}]"
    n_chunks = -(-len(data) // config.chunk_examples)
    if (cache / MANIFEST).is_file():
        log.info("augment: cached result found at %s", cache)
        return _assemble(data, [row for i in range(n_chunks) for row in _read_rows(_chunk_path(cache, i))], source)

    cache.mkdir(parents=True, exist_ok=True)
    done = [i for i in range(n_chunks) if _chunk_path(cache, i).is_file()]
    if done:
        log.info("augment: resuming in %s, %d of %d chunks already done", cache, len(done), n_chunks)
    tokenizer = load_tokenizer(folder)
    masked_lm, neighbours = load_generators(folder, tokenizer, config)
    todo = sorted(set(range(n_chunks)) - set(done))
    todo_examples = [j for i in todo
                     for j in range(i * config.chunk_examples, min(len(data), (i + 1) * config.chunk_examples))]
    sentences = dict(zip(todo_examples, split_words(tokenizer, [data.texts[j] for j in todo_examples])))
    # All distinct words that go to the embedding generator, neighbours found in one pass of matrix products.
    neighbours.prepare(word.piece_ids for s in sentences.values() for word in s.words
                       if word.replaceable and not (masked_lm is not None and masked_lm.applies(s, word)))
    started = time.perf_counter()
    bar = tqdm(total=len(data), initial=len(data) - len(todo_examples), desc="augment", unit="example",
               disable=not progress or not sys.stderr.isatty(), dynamic_ncols=True)
    done = len(data) - len(todo_examples)
    heartbeat = ProgressLog("augment", done, len(data), enabled=bar.disable)
    try:
        for chunk in todo:
            indices = range(chunk * config.chunk_examples, min(len(data), (chunk + 1) * config.chunk_examples))
            # Sentences of similar length share a forward pass, so little of it is padding.
            by_length = sorted(indices, key=lambda j: len(sentences[j].piece_ids))
            per_example: dict[int, dict[int, list[str]]] = {}
            for start in range(0, len(by_length), config.batch_size):
                batch = by_length[start : start + config.batch_size]
                found = word_candidates([sentences[j] for j in batch], masked_lm, neighbours)
                for s, j in enumerate(batch):
                    per_example[j] = {w: options for (t, w), options in found.items() if t == s}
                bar.update(len(batch))
                done += len(batch)
                heartbeat.update(done)
            rows: list[dict[str, Any]] = []
            for j in indices:
                rng = np.random.default_rng([config.seed, j])  # per example: independent of batching and chunks
                rows.extend(_rows(data, j, [data.texts[j], *new_sentences(sentences[j], per_example[j], config, rng)]))
            _write_chunk(_chunk_path(cache, chunk), rows)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    write_json_atomic(cache / MANIFEST, {
        "model": str(folder), "data": data.source, "examples": len(data), "chunks": n_chunks,
        "rows": len(data) * (1 + config.n_augmented), "config": asdict(config),
        "generators": (["mlm"] if masked_lm is not None else []) + ["embedding"],
        "seconds_this_call": round(seconds, 3),
    })
    log.info("augment: %d examples -> %d rows in %.1f s, cached at %s", len(data), len(data) * (1 + config.n_augmented),
             seconds, cache)
    return _assemble(data, [row for i in range(n_chunks) for row in _read_rows(_chunk_path(cache, i))], source)


def write_jsonl(data: Any, path: str | Path) -> Path:
    """Write `data` as JSONL that `load_data` reads back (text/label, or sentence1/sentence2/label), atomically."""
    rows = []
    for i, text in enumerate(data.texts):
        row: dict[str, Any] = {"text": text} if data.text_pairs is None else {
            "sentence1": text, "sentence2": data.text_pairs[i]}
        row["label"] = data.label_of(i)
        rows.append(row)
    _write_chunk(Path(path), rows)
    return Path(path)
