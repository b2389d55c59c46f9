"""Pictures of what a detector predicts, for people to look at (demo, docs, reports)."""

from __future__ import annotations

import math
import os
import os.path as osp
from typing import List, Optional, Sequence

from PIL import Image, ImageDraw

PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
]


def draw_detections(
    img: Image.Image,
    boxes: Sequence[Sequence[float]],
    labels: Sequence[int],
    scores: Sequence[float],
    class_names: Sequence[str],
    score_thr: float = 0.3,
) -> Image.Image:
    img = img.convert('RGB')
    draw = ImageDraw.Draw(img)
    for box, label, score in zip(boxes, labels, scores):
        if score < score_thr:
            continue
        colour = PALETTE[int(label) % len(PALETTE)]
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=2)
        draw.text((x0 + 2, y0 + 1), f'{class_names[int(label)]} {score:.2f}', fill=colour)
    return img


def prediction_grid(
    config: str,
    checkpoint: str,
    images: List[str],
    out_png: str,
    score_thr: float = 0.3,
    cols: int = 4,
    device: Optional[str] = None,
) -> str:
    """Run an mmdet detector on ``images`` and save them in a grid with boxes drawn."""
    from mmdet.apis import inference_detector, init_detector

    import gpunet_mm  # noqa: F401

    from .apis.runner import check_image

    for path in images:  # before the model is built: a bad file is named at once
        check_image(path)

    model = init_detector(config, checkpoint, device=device or 'cpu')
    names = model.dataset_meta['classes']
    tiles = []
    for path in images:
        inst = inference_detector(model, path).pred_instances.cpu()
        tiles.append(
            draw_detections(
                Image.open(path),
                inst.bboxes.tolist(),
                inst.labels.tolist(),
                inst.scores.tolist(),
                names,
                score_thr,
            )
        )
    w, h = tiles[0].size
    grid = Image.new('RGB', (cols * w, math.ceil(len(tiles) / cols) * h), (255, 255, 255))
    for k, tile in enumerate(tiles):
        grid.paste(tile, ((k % cols) * w, (k // cols) * h))
    os.makedirs(osp.dirname(osp.abspath(out_png)), exist_ok=True)
    grid.save(out_png)
    return out_png
