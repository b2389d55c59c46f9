"""Regenerate the hub tables in docs/model_zoo.md (between <!-- BEGIN hub:X --> markers).

    python tools/misc/gen_model_zoo.py          # rewrite the page
    python tools/misc/gen_model_zoo.py --check  # exit 1 if the committed page differs

Run it after benchmarks/benchmark_hub.py or a change to gpunet_mm/models/tiers.py; the
prose around the markers is left alone. See gpunet_mm/hub/generate.py.
"""

import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--check', action='store_true', help='compare instead of writing')
    args = p.parse_args(argv)
    from gpunet_mm.hub.generate import MODEL_ZOO_PAGE, render_model_zoo

    path = osp.join(ROOT, MODEL_ZOO_PAGE)
    text = render_model_zoo(path)
    with open(path, encoding='utf-8') as f:
        same = f.read() == text
    if same:
        print(f'{MODEL_ZOO_PAGE} is up to date')
        return 0
    if args.check:
        print(f'{MODEL_ZOO_PAGE} is out of date: run tools/misc/gen_model_zoo.py')
        return 1
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    print(f'{MODEL_ZOO_PAGE} written')
    return 0


if __name__ == '__main__':
    sys.exit(main())
