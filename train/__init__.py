"""Streaming trainer: a segmentation model trained on samples the generator keeps producing.

- :mod:`train.config` — ``TrainConfig`` (YAML + CLI overrides, saved with every output);
- :mod:`train.stream` — shared-memory ring buffer fed by generator processes, freshness policy;
- :mod:`train.filestream` — follow a folder / WebDataset shards refreshed by ``keysynth synth``;
- :mod:`train.losses` — Dice + boundary terms (Kervadec et al. 2019 surface loss, edge BCE);
- :mod:`train.trainer` — the loop (``train(config)``), checkpoints, resume, evaluation, DDP.
"""
