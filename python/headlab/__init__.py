"""Read HeadLab's HDF5 outputs (captures, probe results, patching sweeps) into numpy arrays.

numpy and h5py only. Example:

    import headlab
    t = headlab.load("trace.h5")
    t.hooks()                    # ['blocks.0.attn.hook_pattern', ...]
    a = t.attention()            # [layer, head, query, key] for batch 0
    t.token_strings              # the prompt's pieces as HeadLab shows them
    t.probes["sinks"]["grid"]    # a probe's [layer, head] grid; .params holds its parameters
"""
import hashlib
import json
import os

import h5py
import numpy as np

SCHEMA = "headlab.trace"
SCHEMA_VERSION = 1  # the newest layout this reader knows (docs/TRACE_FORMAT.md)

__all__ = ["load", "Trace", "Probe", "SCHEMA_VERSION", "provenance", "verify"]


class Probe(dict):
    """A probe's (or a patching sweep's) arrays by name; .params holds every parameter used."""

    def __init__(self, arrays, params):
        super().__init__(arrays)
        self.params = params


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _attr(value):
    """An HDF5 attribute as Python: strings decoded, JSON-looking strings parsed, arrays as lists."""
    if isinstance(value, (bytes, str)):
        s = _text(value)
        if s[:1] in "[{":
            try:
                return json.loads(s)
            except ValueError:
                return s
        return s
    if isinstance(value, np.ndarray):
        return [_attr(v) for v in value.tolist()] if value.dtype.kind in "OSU" else value.tolist()
    return value.item() if isinstance(value, np.generic) else value


class Trace:
    """One HeadLab HDF5 file, read whole into numpy arrays."""

    def __init__(self, path):
        self.path = str(path)
        with h5py.File(self.path, "r") as f:
            schema = _text(f.attrs.get("schema", b""))
            if schema != SCHEMA:
                raise ValueError(f"{self.path}: not a HeadLab trace (schema '{schema}', expected '{SCHEMA}')")
            version = int(f.attrs.get("schema_version", 0))
            if version > SCHEMA_VERSION:
                raise ValueError(f"{self.path}: schema_version {version} is newer than this reader knows ({SCHEMA_VERSION}); update headlab")
            self.metadata = {k: _attr(v) for k, v in f.attrs.items()}
            # Where the file came from (app version and commit, command line, model files and their SHA-256, …).
            self.provenance = self.metadata.get("provenance") or _sidecar(self.path)
            self.model = {k: _attr(v) for k, v in f["model"].attrs.items()} if "model" in f else {}
            self.tokens = f["inputs/tokens"][...] if "inputs/tokens" in f else None
            self.token_strings = [_text(s) for s in f["inputs/token_strings"][...]] if "inputs/token_strings" in f else []
            self.image = f["inputs/image"][...] if "inputs/image" in f else None
            self.image_span = tuple(int(x) for x in f["inputs/image_span"][...]) if "inputs/image_span" in f else None
            self.interventions = json.loads(_text(f["interventions"][()])) if "interventions" in f else []
            self._activations, self._axes, self._selections = {}, {}, {}
            if "activations" in f:
                for name, d in f["activations"].items():
                    self._activations[name] = d[...]
                    self._axes[name] = [_text(a) for a in d.attrs.get("axes", [])]
                    if "heads" in d.attrs:  # a tile (capture --heads/--rows/--cols)
                        q0, k0 = int(d.attrs["q_start"]), int(d.attrs["k_start"])
                        self._selections[name] = {"heads": json.loads(_text(d.attrs["heads"])), "rows": (q0, q0 + d.shape[2]),
                                                  "cols": (k0, k0 + d.shape[3])}
            self.probes = {}
            if "probes" in f:
                for name, g in f["probes"].items():
                    params = {k: _attr(v) for k, v in g.attrs.items() if k not in ("schema", "schema_version")}
                    self.probes[name] = Probe({k: d[...] for k, d in g.items()}, params)

    def hooks(self):
        """The hook names whose activations the file holds, in layer order."""
        def key(name):
            parts = name.split(".")
            return (int(parts[1]) if parts[0] == "blocks" and parts[1].isdigit() else -1, name)
        return sorted(self._activations, key=key)

    def __getitem__(self, hook):
        if hook not in self._activations:
            raise KeyError(f"{self.path} holds no activation '{hook}' (it holds: {', '.join(self.hooks()) or 'none'})")
        return self._activations[hook]

    def axes(self, hook):
        """The axis names of a hook's array, e.g. ['batch', 'head', 'q_pos', 'k_pos']."""
        self[hook]
        return self._axes[hook]

    def selection(self, hook):
        """For a tile captured with --heads/--rows/--cols: {'heads': [...], 'rows': (a, b), 'cols': (c, d)}, so that
        t[hook][0, i, r - a, k - c] is head heads[i], query r, key k. None for a whole activation."""
        self[hook]
        return self._selections.get(hook)

    def attention(self, layers=None, batch=0, hook="attn.hook_pattern"):
        """Attention as [layer, head, query, key] (hook_attn_scores with hook='attn.hook_attn_scores')."""
        if layers is None:
            layers = sorted(int(n.split(".")[1]) for n in self._activations if n.startswith("blocks.") and n.endswith("." + hook))
        if not len(layers):
            raise KeyError(f"{self.path} holds no blocks.*.{hook}; capture it with --hooks 'blocks.*.{hook}'")
        return np.stack([self[f"blocks.{l}.{hook}"][batch] for l in layers])


def _read_safetensors(path):
    """A safetensors file by the format's rules: an 8-byte little-endian header length, a JSON header
    (name -> dtype, shape, data_offsets; "__metadata__" -> strings), then the raw data."""
    import struct
    dtypes = {"F32": "<f4", "F16": "<f2", "BF16": None, "F64": "<f8", "I64": "<i8", "I32": "<i4"}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    arrays = {}
    for name, e in header.items():
        if dtypes.get(e["dtype"]) is None:
            raise ValueError(f"{path}: tensor '{name}' has dtype {e['dtype']}, which this reader does not convert")
        a, b = e["data_offsets"]
        arrays[name] = np.frombuffer(data[a:b], dtype=dtypes[e["dtype"]]).reshape(e["shape"])
    return arrays, meta


def _from_tensor_file(path):
    """A Trace from `headlab-cli capture|probe|patch --format safetensors|npz`."""
    path = str(path)
    if path.endswith(".npz"):
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files if k != "__metadata__"}
            meta = json.loads(z["__metadata__"].item()) if "__metadata__" in z.files else {}
    else:
        arrays, raw = _read_safetensors(path)
        meta = {k: (json.loads(v) if k != "schema" else v) for k, v in raw.items()}
    t = Trace.__new__(Trace)
    t.path = path
    t.metadata = {"schema": meta.get("schema", "")}
    t.provenance = meta.get("provenance") or _sidecar(path)
    t.model = dict((t.provenance or {}).get("config", {}))
    t.tokens = np.array([meta["tokens"]]) if "tokens" in meta else None
    t.token_strings = meta.get("token_strings", [])
    t.image, t.image_span = None, None
    t.interventions = meta.get("interventions", [])
    t._activations, t._axes, t.probes = {}, {}, {}
    schema = meta.get("schema", "")
    if schema == "headlab.capture":
        t._activations = arrays
        t._axes = {name: [] for name in arrays}
    elif schema in ("headlab.probe", "headlab.patching"):
        name = meta.get("probe", "patching")
        t.probes[name] = Probe(arrays, meta.get("params", {}))
    else:
        raise ValueError(f"{path}: not a HeadLab file (schema '{schema}')")
    return t


def load(path):
    """Reads a HeadLab file: HDF5 (capture, probe --out, patch --out, the demo trace, the window's
    export) or, from --format, safetensors and npz (their axes are not stored: t.axes() is empty)."""
    if str(path).endswith((".safetensors", ".npz")):
        return _from_tensor_file(path)
    return Trace(path)


def _sidecar(path):
    side = str(path) + ".provenance.json"
    if os.path.exists(side):
        with open(side) as f:
            return json.load(f)
    return None


def provenance(path):
    """The provenance record of a file HeadLab wrote: its HDF5 root attribute, else its
    <file>.provenance.json sidecar."""
    try:
        with h5py.File(str(path), "r") as f:
            if "provenance" in f.attrs:
                return json.loads(_text(f.attrs["provenance"]))
    except OSError:
        pass  # not HDF5: the sidecar alone
    record = _sidecar(path)
    if record is None:
        raise ValueError(f"{path}: no provenance (neither a 'provenance' attribute nor {path}.provenance.json)")
    return record


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path, model=None):
    """Checks a file's provenance against the model files on disk now. Returns the problems, one line
    each (an empty list: every recorded file is there with the recorded SHA-256). model: a folder (or
    file) to look in instead of the recorded paths, the files matched by name."""
    record = provenance(path)
    problems = []
    for entry in record["model"]["files"] + record.get("extra_files", []):
        where = entry["path"]
        if model is not None:
            where = str(model) if os.path.isfile(str(model)) else os.path.join(str(model), os.path.basename(entry["path"]))
        if not os.path.exists(where):
            problems.append(f"missing: {where} (recorded {entry['path']})")
            continue
        digest = _sha256(where)
        if digest != entry["sha256"]:
            problems.append(f"changed: {where}: sha256 {digest} differs from the recorded {entry['sha256']}")
    return problems

