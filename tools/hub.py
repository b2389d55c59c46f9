"""GPUNet model hub: the most accurate network under your latency, with where numbers come from.

    python tools/hub.py query --device A100 --latency 1.0 --task cls
    python tools/hub.py query --device cpu --latency 80 --task det
    python tools/hub.py list --task cls --condition 'latency_ms<=1.0,top1>=80' --sort latency_ms
    python tools/hub.py pareto --device V100 --task cls
    python tools/hub.py show GPUNet-D1 --config-out work_dirs/gpunet-d1.py
    python tools/hub.py add --name my-net --task cls --tier GPUNet-0 --device A100 \\
        --backend tensorrt --precision fp16 --shape 320 320 --latency 0.5 --tool trtexec \\
        --env gpu=A100-SXM4-80GB
    python tools/hub.py import work_dirs/nas_det [--pareto]

Every command takes --hub-file FILE (the user hub file; default $GPUNET_MM_HUB or
~/.cache/gpunet_mm/hub.jsonl) and --json. See docs/hub.md.
"""

import sys

from gpunet_mm.hub.cli import main

if __name__ == '__main__':
    sys.exit(main())
