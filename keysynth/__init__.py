"""keysynth: synthetic key-segmentation data, a streaming trainer, and real-photo evaluation.

The console script ``keysynth`` (see :mod:`keysynth.cli`) is thin glue over the four packages
``backgrounds``, ``synth``, ``train`` and ``real_eval``.
"""

__version__ = "0.1.0"
