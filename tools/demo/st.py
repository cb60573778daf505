"""Minimal safetensors reader/writer (the Python package is not available from Debian)."""
import json
import struct

import numpy as np

_DTYPES = {'F32': np.float32, 'F16': np.float16, 'I64': np.int64}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def write(path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    header: dict = {'__metadata__': metadata} if metadata else {}
    offset = 0
    arrays = []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        header[name] = {'dtype': _NAMES[a.dtype], 'shape': list(a.shape), 'data_offsets': [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    raw = json.dumps(header, separators=(',', ':')).encode('utf-8')
    raw += b' ' * (-len(raw) % 8)  # the spec lets the header be padded so tensor data stays aligned
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(raw)))
        f.write(raw)
        for a in arrays:
            f.write(a.astype(a.dtype.newbyteorder('<'), copy=False).tobytes())


def read(path: str) -> dict[str, np.ndarray]:
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    header.pop('__metadata__', None)
    out = {}
    for name, info in header.items():
        start, end = info['data_offsets']
        out[name] = np.frombuffer(data[8 + n + start:8 + n + end], dtype=np.dtype(_DTYPES[info['dtype']]).newbyteorder('<')).reshape(info['shape'])
    return out


def shapes(path: str) -> dict[str, dict]:
    """dtype and shape of every tensor, from the header alone (for the manifest)."""
    with open(path, 'rb') as f:
        (n,) = struct.unpack('<Q', f.read(8))
        header = json.loads(f.read(n))
    header.pop('__metadata__', None)
    return {k: {'dtype': v['dtype'], 'shape': v['shape']} for k, v in sorted(header.items())}
