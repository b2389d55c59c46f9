"""Built-in demo data: rendered shapes for detection (COCO format) and classification.

Why this exists: the machines this project runs on can download nothing (no COCO, no
ImageNet), yet the demo and the end-to-end tests must train a real model and report a real
metric. So we render the data: geometric shapes on textured, noisy backgrounds. The *shape*
is the class; colour, size, rotation, aspect and shading are random, so a model has to
learn shape, not colour. Everything is drawn from seeded ``numpy`` generators and encoded
with fixed settings, so the same seed gives the same bytes.

Design points worth knowing before changing anything here:

* Every image has its own seed, derived from ``(seed, split, index)``. Growing a split
  appends images without changing the existing ones, and a test can re-render one image.
* Detection boxes are computed from the *visible* anti-aliased coverage of each object
  (coverage >= 0.5, after later objects have been painted over it), so boxes are tight
  around the pixels actually drawn. Overlap is limited: an object may lose at most
  ``MAX_OCCLUSION`` of its area to the objects painted over it.
* ``_meta.json`` is written last. Its presence with matching parameters is what makes a
  later call skip the work; a crash mid-way leaves no ``_meta.json`` and the next call
  regenerates from scratch.

Pure numpy + Pillow: importable without torch, mmdet or mmpretrain.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

#: Bump when the rendering changes, so existing sets on disk are regenerated.
GENERATOR_VERSION = 1

#: Detection classes, in COCO ``category_id`` order (id = index + 1).
DETECTION_CLASSES: tuple[str, ...] = ('circle', 'square', 'triangle', 'star')

#: Classification classes, label = index. Sorted on purpose: mmpretrain's ``CustomDataset``
#: without an ``ann_file`` numbers the class folders in sorted order, so with sorted names
#: the folder layout and ``meta/*.txt`` agree on every label.
CLASSIFICATION_CLASSES: tuple[str, ...] = (
    'circle',
    'crescent',
    'cross',
    'hexagon',
    'ring',
    'square',
    'star',
    'triangle',
)

# Which shapes ``generate_classification_demo(num_classes=N)`` uses: the first N of this
# order (the detection shapes first), then sorted for the labels (see above).
_SHAPE_PREFERENCE = ('circle', 'square', 'triangle', 'star', 'hexagon', 'cross', 'ring', 'crescent')

#: Largest fraction of an object's area that later objects may cover.
MAX_OCCLUSION = 0.2

_SUPERSAMPLE = 4  # anti-aliasing: shapes are drawn at 4x and box-filtered down
_MIN_DET_SIZE = 64
_MIN_CLS_SIZE = 32
_SPLIT_IDS = {'train': 0, 'val': 1}
_KIND_IDS = {'det': 1, 'cls': 2}
_META = '_meta.json'


# --------------------------------------------------------------------------------------
# geometry and rendering
# --------------------------------------------------------------------------------------
def _regular_polygon(n: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], axis=1) * radius


def _shape_parts(name: str, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """A shape as unit-radius polygons, each with fill 255 (paint) or 0 (cut a hole).

    Every vertex lies within the unit circle, so a shape scaled by r fits a circle of
    radius r whatever the rotation; placement relies on this.
    """
    if name == 'circle':
        return [(_regular_polygon(64), 255)]
    if name == 'square':
        return [(_regular_polygon(4, phase=np.pi / 4), 255)]
    if name == 'triangle':
        return [(_regular_polygon(3, phase=-np.pi / 2), 255)]
    if name == 'hexagon':
        return [(_regular_polygon(6), 255)]
    if name == 'star':
        inner = rng.uniform(0.38, 0.5)
        outer = _regular_polygon(5, phase=-np.pi / 2)
        inner_pts = _regular_polygon(5, inner, phase=-np.pi / 2 + np.pi / 5)
        return [(np.stack([outer, inner_pts], axis=1).reshape(-1, 2), 255)]
    if name == 'cross':
        w = rng.uniform(0.3, 0.42)  # half-width of an arm
        a = math.sqrt(1 - w * w)  # arm length, so the corners stay on the unit circle
        pts = [(w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a)]
        pts += [(-x, -y) for x, y in pts]
        return [(np.array(pts, dtype=np.float64), 255)]
    if name == 'ring':
        return [(_regular_polygon(64), 255), (_regular_polygon(64, rng.uniform(0.45, 0.62)), 0)]
    if name == 'crescent':
        r2 = rng.uniform(0.75, 0.9)
        return [
            (_regular_polygon(64), 255),
            (_regular_polygon(64, r2) + [rng.uniform(0.35, 0.5), 0], 0),
        ]
    raise ValueError(f'unknown shape {name!r}; known: {_SHAPE_PREFERENCE}')


def _render_alpha(
    parts: list[tuple[np.ndarray, int]], transform: np.ndarray, center: np.ndarray, size: int
) -> np.ndarray:
    """Anti-aliased coverage (float32 in [0, 1], ``size x size``) of one transformed shape.

    Only the patch around the shape is drawn (at ``_SUPERSAMPLE`` x) to keep this cheap.
    """
    pts_all = [pts @ transform.T + center for pts, _ in parts]
    lo = np.floor(np.min([p.min(0) for p in pts_all], axis=0)).astype(int) - 1
    hi = np.ceil(np.max([p.max(0) for p in pts_all], axis=0)).astype(int) + 1
    lo = np.clip(lo, 0, size)
    hi = np.clip(hi, 0, size)
    alpha = np.zeros((size, size), np.float32)
    w, h = hi - lo
    if w <= 0 or h <= 0:
        return alpha
    ss = _SUPERSAMPLE
    canvas = Image.new('L', (int(w) * ss, int(h) * ss), 0)
    draw = ImageDraw.Draw(canvas)
    for (_, fill), pts in zip(parts, pts_all):
        # pixel i covers [i, i+1): its supersampled sub-pixel centres are at (j + 0.5) / ss
        xy = (pts - lo) * ss - 0.5
        draw.polygon([tuple(p) for p in xy.tolist()], fill=fill)
    patch = np.asarray(canvas.reduce(ss), dtype=np.float32) / 255.0
    alpha[lo[1] : hi[1], lo[0] : hi[0]] = patch
    return alpha


def _background(rng: np.random.Generator, size: int, clutter: int) -> np.ndarray:
    """Textured background: smooth colour field + finer grey texture + a few thin lines.

    Lines, not filled blobs, as clutter: blobs would look like unlabelled circles.
    """
    g = int(rng.integers(2, 6))
    low = rng.uniform(0, 255, (g, g, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC), np.float32)
    g2 = int(rng.integers(8, 33))
    fine = rng.uniform(-1, 1, (g2, g2)).astype(np.float32)
    fine_img = Image.fromarray(((fine + 1) * 127.5).astype(np.uint8)).resize(
        (size, size), Image.BICUBIC
    )
    fine = np.asarray(fine_img, np.float32) / 127.5 - 1
    img += fine[..., None] * rng.uniform(0, 40)
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, clutter + 1))):
        x0, y0, x1, y1 = rng.uniform(0, size, 4).tolist()
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, 3)))
    return np.asarray(canvas, np.float32)


def _pick_colour(rng: np.random.Generator, bg_mean: np.ndarray) -> np.ndarray:
    """A random colour that stands out from the local background (else shapes vanish)."""
    best, best_d = None, -1.0
    for _ in range(20):
        c = rng.uniform(0, 255, 3)
        d = float(np.linalg.norm(c - bg_mean))
        if d >= 100:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


def _paint(
    img: np.ndarray,
    alpha: np.ndarray,
    colour: np.ndarray,
    rng: np.random.Generator | None = None,
) -> None:
    """Alpha-blend one object into ``img``: flat colour plus, given ``rng``, a random
    linear shading ramp (so objects are not flat patches a colour threshold would find)."""
    ys, xs = np.nonzero(alpha > 0)
    if len(ys) == 0:
        return
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    a = alpha[y0:y1, x0:x1, None]
    fg = np.broadcast_to(np.asarray(colour, np.float32), a.shape[:2] + (3,))
    if rng is not None:
        phi = rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(0, 40)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        span = max(y1 - y0, x1 - x0, 1)
        ramp = ((xx - xx.mean()) * np.cos(phi) + (yy - yy.mean()) * np.sin(phi)) / span * amp
        fg = np.clip(fg + ramp[..., None], 0, 255)
    img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + fg * a


def _place_shape(
    rng: np.random.Generator,
    name: str,
    size: int,
    diameter: float,
    center_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Random rotation/aspect/position for one shape; returns its coverage map."""
    parts = _shape_parts(name, rng)
    r = diameter / 2
    theta = rng.uniform(0, 2 * np.pi)
    aspect = rng.uniform(0.75, 1.0)
    scale = np.diag([1.0, aspect] if rng.random() < 0.5 else [aspect, 1.0]) * r
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    lo, hi = (r + 1, size - r - 1) if center_range is None else center_range
    center = rng.uniform(lo, hi, 2)
    return _render_alpha(parts, rot @ scale, center, size)


def _seeded_rngs(*key: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators, geometry and appearance, for one image.

    Kept apart so that ``clean=True`` renders (used by tests) consume appearance draws
    differently without moving any object.
    """
    geo, app = np.random.SeedSequence(list(key)).spawn(2)
    return np.random.default_rng(geo), np.random.default_rng(app)


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor-like Gaussian noise, then quantise."""
    img = img + rng.normal(0, rng.uniform(3, 14), img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_detection_sample(
    seed: int,
    split: str,
    index: int,
    image_size: int = 256,
    objects_per_image: tuple[int, int] = (1, 6),
    object_size: tuple[float, float] = (0.1, 0.5),
    classes: Sequence[str] = DETECTION_CLASSES,
    clean: bool = False,
) -> tuple[np.ndarray, list[dict[str, Any]], np.ndarray]:
    """Render detection image ``index`` of ``split``, exactly as the generator writes it.

    Public so tests (and curious users) can re-render one image and check its boxes
    against its pixels. ``clean=True`` draws the same objects in white (255) on black,
    without texture, shading or noise: the geometry and the boxes are identical.

    Returns ``(image HxWx3 uint8, objects, masks)``; each object is ``dict(label, bbox,
    area)`` with ``label`` 0-based and ``bbox`` = ``[x, y, w, h]`` in pixels; ``masks``
    (N x H x W, bool) is each object's visible region, from which its box is taken.
    """
    geo, app = _seeded_rngs(seed, _KIND_IDS['det'], _SPLIT_IDS[split], index)
    s = image_size
    bg = np.zeros((s, s, 3), np.float32) if clean else _background(app, s, clutter=4)
    img = bg.copy()
    n_target = int(geo.integers(objects_per_image[0], objects_per_image[1] + 1))
    lo_size, hi_size = object_size
    vis: list[np.ndarray] = []  # visible coverage of each placed object
    full_area: list[float] = []
    labels: list[int] = []
    attempts = 0
    while len(vis) < n_target:
        attempts += 1
        if attempts > 400:
            if len(vis) >= objects_per_image[0]:
                break
            raise RuntimeError(
                f'could not place {objects_per_image[0]} objects of size {object_size} in a '
                f'{s}px image without heavy overlap; use smaller objects or fewer per image'
            )
        # the first object of image i is class i % C, so any split with >= C images has
        # every class; the others are uniform
        label = index % len(classes) if not vis else int(geo.integers(len(classes)))
        # log-uniform size: as many small objects as large ones, for every FPN level;
        # shrink on repeated failures so crowded images still fill up
        shrink = 0.97 ** max(0, attempts - 50)
        frac = math.exp(geo.uniform(math.log(lo_size), math.log(hi_size))) * shrink
        alpha = _place_shape(geo, classes[label], s, max(frac * s, 4.0))
        hard = alpha >= 0.5
        area = float(hard.sum())
        if area < 9:
            continue
        ok = all(
            float(((v * (1 - alpha)) >= 0.5).sum()) >= (1 - MAX_OCCLUSION) * fa
            for v, fa in zip(vis, full_area)
        )
        if not ok:
            continue
        for v in vis:
            v *= 1 - alpha
        vis.append(alpha)
        full_area.append(area)
        labels.append(label)
        if clean:
            _paint(img, alpha, np.full(3, 255.0))
        else:
            region = bg[alpha >= 0.5]
            _paint(img, alpha, _pick_colour(app, region.mean(0)), app)
    if clean:
        out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    else:
        out = _finish(img, app)
    objects, masks = [], []
    for label, v in zip(labels, vis):
        m = v >= 0.5
        ys, xs = np.nonzero(m)
        x0, y0 = int(xs.min()), int(ys.min())
        w, h = int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0
        objects.append(dict(label=label, bbox=[x0, y0, w, h], area=float(m.sum())))
        masks.append(m)
    return out, objects, np.stack(masks) if masks else np.zeros((0, s, s), bool)


def render_classification_sample(
    seed: int, split: str, class_name: str, index: int, image_size: int = 64
) -> np.ndarray:
    """Render one classification image: one roughly centred shape on a noisy background."""
    key = sum(ord(c) * 131**i for i, c in enumerate(class_name)) % (2**31)
    geo, app = _seeded_rngs(seed, _KIND_IDS['cls'], _SPLIT_IDS[split], key, index)
    s = image_size
    img = _background(app, s, clutter=2)
    diameter = geo.uniform(0.45, 0.9) * s
    r = diameter / 2
    jitter = 0.15 * s
    lo, hi = max(r, s / 2 - jitter), min(s - r, s / 2 + jitter)
    alpha = _place_shape(geo, class_name, s, diameter, center_range=(lo, hi))
    _paint(img, alpha, _pick_colour(app, img[alpha >= 0.5].mean(0)), app)
    return _finish(img, app)


# --------------------------------------------------------------------------------------
# writing sets to disk
# --------------------------------------------------------------------------------------
def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f'{name} must be a positive integer, got {value!r}')


def _check_range(name: str, value: Sequence[float], lo: float, hi: float) -> None:
    if len(value) != 2 or not (lo <= value[0] <= value[1] <= hi):
        raise ValueError(
            f'{name} must be (min, max) with {lo} <= min <= max <= {hi}, got {value!r}'
        )


def _load_meta(out_dir: str) -> dict | None:
    try:
        with open(os.path.join(out_dir, _META), encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_demo_data(folder: str) -> bool:
    """True when ``folder`` (a dataset's ``data_root``) holds data this module generated.

    What a model scores on these rendered shapes says nothing about real images, so results
    trained or evaluated on them are marked as toy data wherever they are reported.
    """
    meta = _load_meta(folder)
    return bool(meta) and 'version' in meta and 'params' in meta


def _up_to_date(out_dir: str, params: dict, expected_files: dict[str, int]) -> dict | None:
    """The stored summary if ``out_dir`` holds a complete set made with ``params``."""
    meta = _load_meta(out_dir)
    if not meta or meta.get('version') != GENERATOR_VERSION or meta.get('params') != params:
        return None
    for rel, count in expected_files.items():  # cheap guard against deleted files
        path = os.path.join(out_dir, rel)
        if count < 0:
            if not os.path.isfile(path):
                return None
        elif not os.path.isdir(path) or sum(len(f) for _, _, f in os.walk(path)) != count:
            return None
    return meta.get('summary')


def _reset(out_dir: str, owned: Sequence[str]) -> None:
    """Remove ``_meta.json`` first (so a crash below reads as incomplete), then our dirs.

    Only the entries this generator writes are removed; anything else in ``out_dir`` stays.
    """
    os.makedirs(out_dir, exist_ok=True)
    meta = os.path.join(out_dir, _META)
    if os.path.exists(meta):
        os.remove(meta)
    for name in owned:
        path = os.path.join(out_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def _write_json(path: str, obj: Any) -> None:
    from ..atomic_write import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1) + '\n')


def _save_image(arr: np.ndarray, path: str, fmt: str, quality: int) -> None:
    im = Image.fromarray(arr)
    if fmt == 'jpg':
        # fixed encoder settings: same pixels -> same bytes
        im.save(path, format='JPEG', quality=quality, subsampling=0, optimize=False)
    else:
        im.save(path, format='PNG', compress_level=6)


def _rle(mask: np.ndarray) -> dict[str, Any]:
    """A boolean mask as COCO's compressed RLE (pycocotools, as mmdet's loader reads it)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(size=[int(v) for v in rle['size']], counts=rle['counts'].decode('ascii'))


def generate_detection_demo(
    out_dir: str,
    num_train: int = 256,
    num_val: int = 64,
    image_size: int = 256,
    seed: int = 0,
    objects_per_image: tuple[int, int] = (1, 6),
    object_size: tuple[float, float] = (0.1, 0.5),
    image_format: str = 'jpg',
    jpeg_quality: int = 92,
    force: bool = False,
    with_masks: bool = False,
) -> dict[str, Any]:
    """Write a COCO-format detection set of rendered shapes (classes: ``DETECTION_CLASSES``).

    Layout: ``train/*.jpg``, ``val/*.jpg``, ``annotations/instances_{train,val}.json``
    (``file_name`` relative to the split folder), ``_meta.json``. Skips the work and returns
    the stored summary when ``out_dir`` already holds a set with the same parameters (pass
    ``force=True`` to regenerate anyway).

    Defaults are sized for a CPU demo: 256 px images keep a RetinaNet step cheap while
    objects of 10-50% of the side (26-128 px, log-uniform) cover FPN strides 8 to 32.
    256 train images are 32 steps of batch 8 per epoch, about 50 s on 2 CPU cores with
    the demo config (RetinaNet + GPUNet-0), so epochs, not data, set the demo's length;
    64 val images hold ~230 boxes, close to 60 per class, for the COCO metric.

    Args:
        out_dir: destination folder (created).
        num_train, num_val: images per split (> 0).
        image_size: side of the square images in pixels (>= 64).
        seed: base seed; every image's seed derives from it, its split and its index.
        objects_per_image: (min, max) objects per image, inclusive.
        object_size: (min, max) object diameter as a fraction of the image side.
        image_format: 'jpg' (small files) or 'png' (lossless: pixels exactly as rendered).
        jpeg_quality: JPEG quality, fixed so output bytes are reproducible.
        force: regenerate even if an up-to-date set is present.
        with_masks: also write each object's visible region as a COCO RLE
            ``segmentation`` (what Mask R-CNN trains on); off by default, so the
            box-only set stays byte-identical.

    Returns:
        A summary dict: paths, classes, image and box counts, seconds, ``skipped``.
    """
    t0 = time.time()
    _check_positive('num_train', num_train)
    _check_positive('num_val', num_val)
    _check_positive('image_size', image_size)
    if image_size < _MIN_DET_SIZE:
        raise ValueError(f'image_size must be >= {_MIN_DET_SIZE} for detection, got {image_size}')
    _check_range('objects_per_image', objects_per_image, 1, 50)
    _check_range('object_size', object_size, 0.02, 0.95)
    if image_format not in ('jpg', 'png'):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f'jpeg_quality must be in 1..100, got {jpeg_quality}')
    params = dict(
        kind='detection',
        num_train=int(num_train),
        num_val=int(num_val),
        image_size=int(image_size),
        seed=int(seed),
        objects_per_image=[int(v) for v in objects_per_image],
        object_size=[float(v) for v in object_size],
        image_format=image_format,
        jpeg_quality=int(jpeg_quality) if image_format == 'jpg' else None,
        classes=list(DETECTION_CLASSES),
    )
    if with_masks:  # only then a parameter: box-only sets keep their stored parameters
        params['with_masks'] = True
    out_dir = os.path.abspath(out_dir)
    splits = {'train': int(num_train), 'val': int(num_val)}
    expected: dict[str, int] = dict(splits)
    expected.update({f'annotations/instances_{s}.json': -1 for s in splits})
    if not force:
        summary = _up_to_date(out_dir, params, expected)
        if summary is not None:
            return dict(summary, out_dir=out_dir, skipped=True, seconds=round(time.time() - t0, 3))

    _reset(out_dir, ['train', 'val', 'annotations'])
    os.makedirs(os.path.join(out_dir, 'annotations'))
    categories = [
        dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(DETECTION_CLASSES)
    ]
    summary: dict[str, Any] = dict(
        out_dir=out_dir, classes=list(DETECTION_CLASSES), image_size=int(image_size)
    )
    for split, count in splits.items():
        os.makedirs(os.path.join(out_dir, split))
        images, annotations = [], []
        for idx in range(count):
            img, objects, masks = render_detection_sample(
                seed, split, idx, image_size, objects_per_image, object_size
            )
            file_name = f'{idx:06d}.{image_format}'
            _save_image(img, os.path.join(out_dir, split, file_name), image_format, jpeg_quality)
            images.append(
                dict(id=idx + 1, file_name=file_name, width=image_size, height=image_size)
            )
            for obj, mask in zip(objects, masks):
                ann = dict(
                    id=len(annotations) + 1,
                    image_id=idx + 1,
                    category_id=obj['label'] + 1,
                    bbox=[float(v) for v in obj['bbox']],
                    area=obj['area'],
                    iscrowd=0,
                )
                if with_masks:
                    ann['segmentation'] = _rle(mask)
                annotations.append(ann)
        coco = dict(
            info=dict(
                description=f'gpunet_mm demo shapes ({split})',
                version=str(GENERATOR_VERSION),
                year=2024,
            ),
            licenses=[],
            images=images,
            annotations=annotations,
            categories=categories,
        )
        _write_json(os.path.join(out_dir, 'annotations', f'instances_{split}.json'), coco)
        summary[f'num_{split}'] = count
        summary[f'instances_{split}'] = len(annotations)
    summary['seconds_to_generate'] = round(time.time() - t0, 2)
    _write_json(
        os.path.join(out_dir, _META),
        dict(version=GENERATOR_VERSION, params=params, summary=summary),
    )
    return dict(summary, skipped=False, seconds=round(time.time() - t0, 3))


def classification_classes(num_classes: int) -> tuple[str, ...]:
    """The classes used for ``num_classes``, in label order (sorted; see above)."""
    if not 2 <= num_classes <= len(_SHAPE_PREFERENCE):
        raise ValueError(f'num_classes must be in 2..{len(_SHAPE_PREFERENCE)}, got {num_classes!r}')
    return tuple(sorted(_SHAPE_PREFERENCE[:num_classes]))


def generate_classification_demo(
    out_dir: str,
    num_classes: int = len(CLASSIFICATION_CLASSES),
    per_class_train: int = 100,
    per_class_val: int = 25,
    image_size: int = 64,
    seed: int = 0,
    force: bool = False,
) -> dict[str, Any]:
    """Write an mmpretrain ``CustomDataset`` set of rendered shapes, one per image.

    Layout (both ways mmpretrain reads a custom set work)::

        train/<class>/<class>_00000.png   val/<class>/...     (folder per class)
        meta/train.txt  meta/val.txt      "<class>/<file>.png <label>" per line,
                                          relative to train/ or val/
        classes.txt                       one name per line, in label order
        _meta.json

    i.e. ``data_root=out_dir, data_prefix='train'`` (folders), or additionally
    ``ann_file='meta/train.txt'``. Labels follow the sorted class names, which is also the
    order mmpretrain assigns to the folders. Defaults (8 classes, 100 + 25 per class at
    64 px) train in minutes on a CPU; skips the work like ``generate_detection_demo``.
    """
    t0 = time.time()
    _check_positive('num_classes', num_classes)
    classes = classification_classes(num_classes)
    _check_positive('per_class_train', per_class_train)
    _check_positive('per_class_val', per_class_val)
    _check_positive('image_size', image_size)
    if image_size < _MIN_CLS_SIZE:
        raise ValueError(
            f'image_size must be >= {_MIN_CLS_SIZE} for classification, got {image_size}'
        )
    params = dict(
        kind='classification',
        classes=list(classes),
        per_class_train=int(per_class_train),
        per_class_val=int(per_class_val),
        image_size=int(image_size),
        seed=int(seed),
    )
    out_dir = os.path.abspath(out_dir)
    splits = {'train': int(per_class_train), 'val': int(per_class_val)}
    expected: dict[str, int] = {s: n * len(classes) for s, n in splits.items()}
    expected.update({f'meta/{s}.txt': -1 for s in splits})
    expected['classes.txt'] = -1
    if not force:
        summary = _up_to_date(out_dir, params, expected)
        if summary is not None:
            return dict(summary, out_dir=out_dir, skipped=True, seconds=round(time.time() - t0, 3))

    _reset(out_dir, ['train', 'val', 'meta', 'classes.txt'])
    os.makedirs(os.path.join(out_dir, 'meta'))
    summary: dict[str, Any] = dict(out_dir=out_dir, classes=list(classes), image_size=image_size)
    for split, per_class in splits.items():
        lines = []
        for label, name in enumerate(classes):
            os.makedirs(os.path.join(out_dir, split, name))
            for idx in range(per_class):
                rel = f'{name}/{name}_{idx:05d}.png'
                img = render_classification_sample(seed, split, name, idx, image_size)
                _save_image(img, os.path.join(out_dir, split, rel), 'png', 0)
                lines.append(f'{rel} {label}\n')
        with open(os.path.join(out_dir, 'meta', f'{split}.txt'), 'w', encoding='utf-8') as f:
            f.writelines(lines)
        summary[f'num_{split}'] = len(lines)
    with open(os.path.join(out_dir, 'classes.txt'), 'w', encoding='utf-8') as f:
        f.writelines(f'{c}\n' for c in classes)
    summary['seconds_to_generate'] = round(time.time() - t0, 2)
    _write_json(
        os.path.join(out_dir, _META),
        dict(version=GENERATOR_VERSION, params=params, summary=summary),
    )
    return dict(summary, skipped=False, seconds=round(time.time() - t0, 3))


# --------------------------------------------------------------------------------------
# preview
# --------------------------------------------------------------------------------------
_PREVIEW_COLOURS = [(255, 64, 64), (64, 255, 64), (64, 160, 255), (255, 220, 0)]


def render_preview(
    det_dir: str,
    out_png: str,
    split: str = 'train',
    num: int = 8,
    cols: int = 4,
    palette: bool = True,
) -> str:
    """Draw the first ``num`` images of a detection set with their boxes, as a grid PNG.

    For the docs and for eyeballing a set: if boxes and shapes disagree, it shows here.
    """
    with open(os.path.join(det_dir, 'annotations', f'instances_{split}.json')) as f:
        coco = json.load(f)
    names = {c['id']: c['name'] for c in coco['categories']}
    by_image: dict[int, list[dict]] = {}
    for ann in coco['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    images = coco['images'][:num]
    if not images:
        raise ValueError(f'no images in {det_dir} ({split})')
    w, h = images[0]['width'], images[0]['height']
    rows = math.ceil(len(images) / cols)
    pad = 4
    grid = Image.new('RGB', (cols * (w + pad) + pad, rows * (h + pad) + pad), (255, 255, 255))
    for i, info in enumerate(images):
        im = Image.open(os.path.join(det_dir, split, info['file_name'])).convert('RGB')
        draw = ImageDraw.Draw(im)
        for ann in by_image.get(info['id'], []):
            x, y, bw, bh = ann['bbox']
            colour = _PREVIEW_COLOURS[(ann['category_id'] - 1) % len(_PREVIEW_COLOURS)]
            # the box's outline lies on the object's outermost pixels (xywh is exclusive)
            draw.rectangle([x, y, x + bw - 1, y + bh - 1], outline=colour, width=1)
            label = names[ann['category_id']]
            ty = y - 11 if y >= 11 else y + bh + 1
            draw.rectangle([x, ty, x + 6 * len(label) + 2, ty + 10], fill=(0, 0, 0))
            draw.text((x + 1, ty), label, fill=colour)
        r, c = divmod(i, cols)
        grid.paste(im, (pad + c * (w + pad), pad + r * (h + pad)))
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    if palette:
        # noisy photos compress badly; 256 colours cut the PNG ~4x and look the same
        grid = grid.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    grid.save(out_png, optimize=True)
    return out_png
