"""keysynth scene synthesis: config, renderer, effects (imports only ``backgrounds``; never torch).

Public API: ``SynthConfig``, ``SampleRenderer``, ``EFFECTS``, ``write_preview`` (lazy, needs
matplotlib), ``seeding.sample_seed``.
"""

from __future__ import annotations

from .config import SynthConfig
from .effects import EFFECTS
from .scene import SampleRenderer
from .seeding import sample_seed

__all__ = ["SynthConfig", "SampleRenderer", "EFFECTS", "sample_seed", "write_preview"]


def write_preview(*args, **kwargs):
    """See ``synth.preview.write_preview`` (imported lazily: matplotlib is heavy)."""
    from .preview import write_preview as _wp

    return _wp(*args, **kwargs)
