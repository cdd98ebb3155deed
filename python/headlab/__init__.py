"""Read HeadLab's HDF5 outputs (captures, probe results, patching sweeps) into numpy arrays.

numpy and h5py only. Example:

    import headlab
    t = headlab.load("trace.h5")
    t.hooks()                    # ['blocks.0.attn.hook_pattern', ...]
    a = t.attention()            # [layer, head, query, key] for batch 0
    t.token_strings              # the prompt's pieces as HeadLab shows them
    t.probes["sinks"]["grid"]    # a probe's [layer, head] grid; .params holds its parameters
"""
import json

import h5py
import numpy as np

SCHEMA = "headlab.trace"
SCHEMA_VERSION = 1  # the newest layout this reader knows (docs/TRACE_FORMAT.md)

__all__ = ["load", "Trace", "Probe", "SCHEMA_VERSION"]


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
            self.model = {k: _attr(v) for k, v in f["model"].attrs.items()} if "model" in f else {}
            self.tokens = f["inputs/tokens"][...] if "inputs/tokens" in f else None
            self.token_strings = [_text(s) for s in f["inputs/token_strings"][...]] if "inputs/token_strings" in f else []
            self.image = f["inputs/image"][...] if "inputs/image" in f else None
            self.image_span = tuple(int(x) for x in f["inputs/image_span"][...]) if "inputs/image_span" in f else None
            self.interventions = json.loads(_text(f["interventions"][()])) if "interventions" in f else []
            self._activations, self._axes = {}, {}
            if "activations" in f:
                for name, d in f["activations"].items():
                    self._activations[name] = d[...]
                    self._axes[name] = [_text(a) for a in d.attrs.get("axes", [])]
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

    def attention(self, layers=None, batch=0, hook="attn.hook_pattern"):
        """Attention as [layer, head, query, key] (hook_attn_scores with hook='attn.hook_attn_scores')."""
        if layers is None:
            layers = sorted(int(n.split(".")[1]) for n in self._activations if n.startswith("blocks.") and n.endswith("." + hook))
        if not len(layers):
            raise KeyError(f"{self.path} holds no blocks.*.{hook}; capture it with --hooks 'blocks.*.{hook}'")
        return np.stack([self[f"blocks.{l}.{hook}"][batch] for l in layers])


def load(path):
    """Reads a HeadLab HDF5 file (capture, probe --out, patch --out, the demo trace)."""
    return Trace(path)
