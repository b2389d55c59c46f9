"""Write configs/*/metafile.yml and model-index.yml from the model hub (one source of truth).

    python tools/misc/gen_metafiles.py          # rewrite the files
    python tools/misc/gen_metafiles.py --check  # exit 1 if a committed file differs

Figures come from gpunet_mm/models/tiers.py (published) and gpunet_mm/hub/data/*.jsonl
(measured, written by benchmarks/benchmark_hub.py); see gpunet_mm/hub/generate.py.
"""

import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--check', action='store_true', help='compare instead of writing')
    args = p.parse_args(argv)
    from gpunet_mm.hub.generate import render_metafiles

    stale = []
    for rel, text in render_metafiles().items():
        path = osp.join(ROOT, rel)
        old = open(path, encoding='utf-8').read() if osp.exists(path) else None
        if old == text:
            continue
        stale.append(rel)
        if not args.check:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(text)
    verb = 'out of date' if args.check else 'written'
    print(f'{verb}: {", ".join(stale)}' if stale else 'metafiles are up to date')
    return 1 if (args.check and stale) else 0


if __name__ == '__main__':
    sys.exit(main())
