"""The built-in demo data: deterministic, valid COCO / CustomDataset layouts, tight boxes,
idempotent, and loud about bad arguments. Tiny sets in tmp_path, a few seconds in all."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gpunet_mm.datasets import (
    CLASSIFICATION_CLASSES,
    DETECTION_CLASSES,
    generate_classification_demo,
    generate_detection_demo,
    render_detection_sample,
    render_preview,
)

DET = dict(num_train=8, num_val=4, image_size=96, objects_per_image=(2, 4))
CLS = dict(num_classes=4, per_class_train=3, per_class_val=2, image_size=48)


def tree_hashes(root: str) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, root)] = hashlib.md5(f.read()).hexdigest()
    return out


def tree_mtimes(root: str) -> dict[str, int]:
    return {
        os.path.relpath(os.path.join(d, n), root): os.stat(os.path.join(d, n)).st_mtime_ns
        for d, _, files in os.walk(root)
        for n in files
    }


def load_coco(root: str, split: str) -> dict:
    with open(os.path.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def det_set(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('det'))
    generate_detection_demo(root, seed=0, **DET)
    return root


@pytest.fixture(scope='module')
def cls_set(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('cls'))
    generate_classification_demo(root, seed=0, **CLS)
    return root


def test_same_seed_same_bytes_other_seed_other_images(det_set, cls_set, tmp_path):
    generate_detection_demo(str(tmp_path / 'det'), seed=0, **DET)
    generate_classification_demo(str(tmp_path / 'cls'), seed=0, **CLS)
    for ref, again in ((det_set, tmp_path / 'det'), (cls_set, tmp_path / 'cls')):
        a, b = tree_hashes(ref), tree_hashes(str(again))
        a.pop('_meta.json'), b.pop('_meta.json')  # records out_dir and timing
        assert len(a) > 10 and a == b

    generate_detection_demo(str(tmp_path / 'det1'), seed=1, **DET)
    generate_classification_demo(str(tmp_path / 'cls1'), seed=1, **CLS)
    for ref, other in ((det_set, tmp_path / 'det1'), (cls_set, tmp_path / 'cls1')):
        a, b = tree_hashes(ref), tree_hashes(str(other))
        images = [k for k in a if k.endswith(('.jpg', '.png'))]
        assert images and set(images) <= set(b)
        assert all(a[k] != b[k] for k in images)


def test_coco_files_are_valid(det_set):
    from pycocotools.coco import COCO

    lo, hi = DET['objects_per_image']
    for split, count in (('train', DET['num_train']), ('val', DET['num_val'])):
        path = os.path.join(det_set, 'annotations', f'instances_{split}.json')
        coco = COCO(path)
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(DETECTION_CLASSES)
        assert coco.getCatIds() == [1, 2, 3, 4]
        assert len(coco.getImgIds()) == count
        for img_id in coco.getImgIds():
            info = coco.loadImgs(img_id)[0]
            with Image.open(os.path.join(det_set, split, info['file_name'])) as im:
                assert im.size == (info['width'], info['height']) == (DET['image_size'],) * 2
                assert im.mode == 'RGB'
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
            assert lo <= len(anns) <= hi
            for ann in anns:
                x, y, w, h = ann['bbox']
                assert w > 0 and h > 0 and x >= 0 and y >= 0
                assert x + w <= info['width'] and y + h <= info['height']
                assert 0 < ann['area'] <= w * h
                assert ann['iscrowd'] == 0 and ann['category_id'] in (1, 2, 3, 4)
        # every class in every split
        cats = {a['category_id'] for a in coco.dataset['annotations']}
        assert cats == {1, 2, 3, 4}, (split, cats)


def test_boxes_are_tight_around_the_drawn_pixels(tmp_path):
    """Clean renders (white shapes on black, same geometry) checked against the boxes."""
    size = 96
    # one object: the box is exactly the extent of the pixels that are mostly shape
    for idx in range(6):
        clean, objs, _ = render_detection_sample(
            5, 'train', idx, size, objects_per_image=(1, 1), clean=True
        )
        ys, xs = np.nonzero(clean[..., 0] >= 128)
        x, y, w, h = objs[0]['bbox']
        assert [x, y, w, h] == [
            xs.min(),
            ys.min(),
            xs.max() + 1 - xs.min(),
            ys.max() + 1 - ys.min(),
        ]
        # and nothing but anti-aliasing outside it
        outside = clean[..., 0].copy()
        outside[y : y + h, x : x + w] = 0
        assert outside.max() < 128

    # several objects: every box edge touches its object, every shape pixel is boxed,
    # and the boxes are the same as in the textured render and in the json
    root = str(tmp_path / 'det')
    generate_detection_demo(
        root, seed=5, num_train=6, num_val=1, image_size=size, image_format='png'
    )
    coco = load_coco(root, 'train')
    for info in coco['images']:
        idx = info['id'] - 1
        img, objs, masks = render_detection_sample(5, 'train', idx, size)
        clean, clean_objs, _ = render_detection_sample(5, 'train', idx, size, clean=True)
        saved = np.asarray(Image.open(os.path.join(root, 'train', info['file_name'])))
        assert np.array_equal(saved, img)  # png: the file holds exactly the render
        boxes = [a['bbox'] for a in coco['annotations'] if a['image_id'] == info['id']]
        assert boxes == [o['bbox'] for o in objs] == [o['bbox'] for o in clean_objs]
        covered = np.zeros((size, size), bool)
        for (x, y, w, h), m in zip(boxes, masks):
            x, y, w, h = int(x), int(y), int(w), int(h)
            assert m[y, x : x + w].any() and m[y + h - 1, x : x + w].any()
            assert m[y : y + h, x].any() and m[y : y + h, x + w - 1].any()
            assert m.sum() == m[y : y + h, x : x + w].sum()
            covered[y : y + h, x : x + w] = True
        assert not (clean[..., 0] >= 128)[~covered].any()


def test_classification_layout_matches_custom_dataset(cls_set):
    classes = [c.strip() for c in open(os.path.join(cls_set, 'classes.txt'))]
    assert classes == sorted(classes) == sorted(['circle', 'square', 'triangle', 'star'])
    assert set(classes) <= set(CLASSIFICATION_CLASSES)
    for split, per_class in (('train', CLS['per_class_train']), ('val', CLS['per_class_val'])):
        # mmpretrain numbers class folders in sorted order: that must be the label order
        assert sorted(os.listdir(os.path.join(cls_set, split))) == classes
        for c in classes:
            files = os.listdir(os.path.join(cls_set, split, c))
            assert len(files) == per_class and all(f.endswith('.png') for f in files)
        lines = open(os.path.join(cls_set, 'meta', f'{split}.txt')).read().splitlines()
        assert len(lines) == per_class * len(classes)
        for line in lines:
            rel, label = line.rsplit(' ', 1)
            assert rel.split('/')[0] == classes[int(label)]
            with Image.open(os.path.join(cls_set, split, rel)) as im:
                assert im.size == (CLS['image_size'],) * 2 and im.mode == 'RGB'


def test_mmpretrain_custom_dataset_reads_both_layouts(cls_set):
    pytest.importorskip('mmpretrain')
    from mmpretrain.datasets import CustomDataset

    by_folder = CustomDataset(data_root=cls_set, data_prefix='val', pipeline=[])
    by_file = CustomDataset(
        data_root=cls_set, ann_file='meta/val.txt', data_prefix='val', pipeline=[]
    )
    assert len(by_folder) == len(by_file) == CLS['per_class_val'] * CLS['num_classes']
    a = sorted((d['img_path'], d['gt_label']) for d in by_folder.load_data_list())
    b = sorted((d['img_path'], d['gt_label']) for d in by_file.load_data_list())
    assert a == b


def test_second_call_skips_and_changes_regenerate(tmp_path):
    root = str(tmp_path / 'det')
    first = generate_detection_demo(root, **DET)
    before = tree_mtimes(root)
    again = generate_detection_demo(root, **DET)
    # how fast the skip is: benchmarks/benchmark_demo_data.py
    assert not first['skipped'] and again['skipped']
    assert tree_mtimes(root) == before
    assert again['num_train'] == DET['num_train']

    # other parameters: regenerated, nothing stale left behind
    smaller = dict(DET, num_train=3)
    assert not generate_detection_demo(root, **smaller)['skipped']
    assert len(os.listdir(os.path.join(root, 'train'))) == 3

    # an interrupted run leaves no _meta.json: the next call regenerates
    os.remove(os.path.join(root, '_meta.json'))
    assert not generate_detection_demo(root, **smaller)['skipped']
    # deleted images are noticed too, and force always regenerates
    os.remove(os.path.join(root, 'val', os.listdir(os.path.join(root, 'val'))[0]))
    assert not generate_detection_demo(root, **smaller)['skipped']
    assert not generate_detection_demo(root, force=True, **smaller)['skipped']

    croot = str(tmp_path / 'cls')
    generate_classification_demo(croot, **CLS)
    before = tree_mtimes(croot)
    assert generate_classification_demo(croot, **CLS)['skipped']
    assert tree_mtimes(croot) == before


@pytest.mark.parametrize(
    'kwargs, bad',
    [
        (dict(num_train=0), '0'),
        (dict(num_val=-2), '-2'),
        (dict(image_size=32), '32'),
        (dict(objects_per_image=(3, 1)), '(3, 1)'),
        (dict(object_size=(0.5, 1.5)), '1.5'),
    ],
)
def test_bad_detection_arguments(tmp_path, kwargs, bad):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name) as err:
        generate_detection_demo(str(tmp_path), **kwargs)
    assert bad in str(err.value)
    assert not os.path.exists(os.path.join(tmp_path, '_meta.json'))


@pytest.mark.parametrize(
    'kwargs, bad',
    [
        (dict(per_class_train=0), '0'),
        (dict(num_classes=99), '99'),
        (dict(image_size=8), '8'),
    ],
)
def test_bad_classification_arguments(tmp_path, kwargs, bad):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name) as err:
        generate_classification_demo(str(tmp_path), **kwargs)
    assert bad in str(err.value)


def test_preview(det_set, tmp_path):
    out = render_preview(det_set, str(tmp_path / 'p.png'), num=4, cols=2)
    with Image.open(out) as im:
        assert im.width > 2 * DET['image_size'] and im.height > 2 * DET['image_size']


def test_module_does_not_import_torch():
    """The generator must stay usable without the model stack (load it by file path, as
    ``gpunet_mm/__init__`` itself registers models)."""
    path = os.path.join(os.path.dirname(__file__), '..', 'gpunet_mm', 'datasets', 'demo_data.py')
    code = (
        'import importlib.util, sys\n'
        f'spec = importlib.util.spec_from_file_location("dd", {path!r})\n'
        'm = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n'
        'print(sorted(k for k in ("torch", "mmdet", "mmpretrain", "mmengine") '
        'if k in sys.modules))\n'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '[]'
