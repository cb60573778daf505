"""Byte-level BPE as GPT-2 defines it: bytes map to printable unicode characters, text is split by
GPT-2's pre-tokenization regex, and merges are learned within those words only.

Training counts distinct words once and then merges over (word, count) pairs, updating only the
words that contain the chosen pair, so each merge costs the size of its occurrences, not the corpus.
"""
import heapq
import json
from collections import Counter, defaultdict

import regex

# GPT-2's pattern, identical to the one @huggingface/tokenizers uses for ByteLevel pre-tokenization.
PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
EOT = '<|endoftext|>'


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> character table: printable Latin-1 bytes map to themselves, the
    rest to code points from 256 up, so every byte sequence becomes a whitespace-free string."""
    keep = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHARS = bytes_to_unicode()
CHAR_BYTES = {c: b for b, c in BYTE_CHARS.items()}


def pretokenize(text: str) -> list[str]:
    """Splits text into GPT-2 words, each rewritten in the byte alphabet."""
    return [''.join(BYTE_CHARS[b] for b in w.encode('utf-8')) for w in PATTERN.findall(text)]


def train(texts, vocab_size: int, log=print) -> list[tuple[str, str]]:
    """Learns vocab_size - 257 merges (256 byte tokens and one end-of-text token fill the rest).
    Ties between equally frequent pairs go to the lexicographically smaller pair, for determinism."""
    word_counts: Counter = Counter()
    for text in texts:
        word_counts.update(pretokenize(text))
    words = [list(w) for w in word_counts]
    counts = list(word_counts.values())
    pair_counts: defaultdict = defaultdict(int)
    where: defaultdict = defaultdict(set)
    for i, (w, c) in enumerate(zip(words, counts)):
        for p in zip(w, w[1:]):
            pair_counts[p] += c
            where[p].add(i)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    n_merges = vocab_size - 257
    merges: list[tuple[str, str]] = []
    log(f'bpe: {len(words)} distinct words, {sum(counts)} words, learning {n_merges} merges')
    while len(merges) < n_merges and heap:
        neg, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg:
            continue  # stale heap entry; the current count was pushed separately
        if -neg < 2:
            break
        merges.append(pair)
        a, b = pair
        merged = a + b
        changed = set()
        for i in where.pop(pair):
            w, c = words[i], counts[i]
            if len(w) < 2:
                continue
            for p in zip(w, w[1:]):
                pair_counts[p] -= c
                changed.add(p)
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                pair_counts[p] += c
                where[p].add(i)
                changed.add(p)
        pair_counts.pop(pair, None)
        for p in changed:
            c = pair_counts.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_counts.pop(p, None)
    return merges


class Encoder:
    """Rank-based BPE encoding (lowest-rank pair first), as Hugging Face's BPE model applies merges."""

    def __init__(self, merges: list[tuple[str, str]]):
        self.ranks = {p: r for r, p in enumerate(merges)}
        self.vocab = {BYTE_CHARS[b]: b for b in range(256)}
        for r, (a, b) in enumerate(merges):
            self.vocab[a + b] = 256 + r
        self.eot_id = len(self.vocab)
        self.vocab[EOT] = self.eot_id
        self.itos = {i: s for s, i in self.vocab.items()}
        self.cache: dict[str, list[int]] = {}

    def _word(self, word: str) -> list[int]:
        hit = self.cache.get(word)
        if hit is not None:
            return hit
        parts = list(word)
        while len(parts) > 1:
            best = min(zip(parts, parts[1:]), key=lambda p: self.ranks.get(p, 1 << 30))
            if best not in self.ranks:
                break
            out, j = [], 0
            while j < len(parts):
                if j + 1 < len(parts) and (parts[j], parts[j + 1]) == best:
                    out.append(parts[j] + parts[j + 1])
                    j += 2
                else:
                    out.append(parts[j])
                    j += 1
            parts = out
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Like Hugging Face, a literal end-of-text string in the text is the special token, not BPE pieces."""
        ids: list[int] = []
        for n, part in enumerate(text.split(EOT)):
            if n:
                ids.append(self.eot_id)
            ids += [i for w in pretokenize(part) for i in self._word(w)]
        return ids

    def decode(self, ids: list[int]) -> str:
        """Inverse of encode: bytes of all pieces, with the end-of-text token written as its literal."""
        out = bytearray()
        for i in ids:
            out += EOT.encode('utf-8') if i == self.eot_id else bytes(CHAR_BYTES[c] for c in self.itos[i])
        return out.decode('utf-8', errors='replace')

    def token_str(self, i: int) -> str:
        if i == self.eot_id:
            return EOT
        return bytes(CHAR_BYTES[c] for c in self.itos[i]).decode('utf-8', errors='replace')


def tokenizer_json(enc: Encoder, merges: list[tuple[str, str]]) -> str:
    """Hugging Face tokenizer.json for a GPT-2 style byte-level BPE (same layout as gpt2's)."""
    byte_level = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True}
    doc = {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': [{'id': enc.eot_id, 'content': EOT, 'single_word': False, 'lstrip': False,
                          'rstrip': False, 'normalized': True, 'special': True}],
        'normalizer': None,
        'pre_tokenizer': byte_level,
        'post_processor': {**byte_level, 'trim_offsets': False},
        'decoder': byte_level,
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': '',
                  'end_of_word_suffix': '', 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                  'vocab': enc.vocab, 'merges': [[a, b] for a, b in merges]},
    }
    return json.dumps(doc, ensure_ascii=False, indent=None)


def load_tokenizer_json(path: str) -> Encoder:
    """Rebuilds an Encoder from a saved tokenizer.json (used to verify the file, not the run's state)."""
    doc = json.load(open(path, encoding='utf-8'))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(' ')) for m in doc['model']['merges']]
    enc = Encoder(merges)
    if enc.vocab != doc['model']['vocab']:
        raise ValueError(f'{path}: vocab does not match the one implied by its merges')
    return enc
