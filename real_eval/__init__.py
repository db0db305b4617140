"""Judging models on real annotated photos: readers (masks, COCO, CVAT, Supervisely, labelme),
metrics, evaluation + HTML report, prediction and ONNX export. Never imports ``synth`` or
``train`` (docs/DESIGN.md). Sub-modules are imported on use to keep ``import real_eval`` light.
"""
