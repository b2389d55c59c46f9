"""Datasets for gpunet_mm. For now: the built-in demo data (rendered shapes).

Kept import-light on purpose (numpy + Pillow, no torch/mmdet/mmpretrain): the data tools
and configs import from here before any model code is needed.
"""

from .demo_data import (
    CLASSIFICATION_CLASSES,
    DETECTION_CLASSES,
    GENERATOR_VERSION,
    classification_classes,
    generate_classification_demo,
    generate_detection_demo,
    is_demo_data,
    render_classification_sample,
    render_detection_sample,
    render_preview,
)

__all__ = [
    'CLASSIFICATION_CLASSES',
    'DETECTION_CLASSES',
    'GENERATOR_VERSION',
    'classification_classes',
    'generate_classification_demo',
    'generate_detection_demo',
    'is_demo_data',
    'render_classification_sample',
    'render_detection_sample',
    'render_preview',
]
