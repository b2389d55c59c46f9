"""Print parameters and GMACs of every GPUNet tier, or of one config's model.

mmengine's FlopAnalyzer counts one multiply-accumulate (MAC) as one "flop"; the figures are
therefore labelled MACs (FLOPs in the 2-ops-per-MAC sense are twice as many).

python tools/analysis/get_flops.py                  # all tiers at native resolution
python tools/analysis/get_flops.py --resolution 224 # all tiers at one resolution
python tools/analysis/get_flops.py CONFIG --shape 800 1333
"""

import argparse

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', help='a model config (optional)')
    parser.add_argument('--resolution', type=int, help='square input for the tier table')
    parser.add_argument(
        '--shape', type=int, nargs=2, metavar=('H', 'W'), help='input shape for a config'
    )
    args = parser.parse_args()
    from gpunet_mm.complexity import TensorMode, complexity_table, count_params

    if args.config is None:
        print(f'{"tier":<10} {"res":>4} {"params (M)":>11} {"GMACs":>8}')
        for name, row in complexity_table(args.resolution).items():
            print(
                f'{name:<10} {row["resolution"]:>4} {row["params_m"]:>11.2f} {row["gmacs"]:>8.3f}'
            )
        return
    from mmengine.analysis import FlopAnalyzer

    from gpunet_mm.apis import build_model, codebase_of, load_config

    cfg = load_config(args.config)
    model = build_model(cfg.model, codebase_of(cfg)).eval()
    h, w = args.shape or (224, 224)
    x = torch.zeros(1, 3, h, w)
    with torch.no_grad():
        analyzer = FlopAnalyzer(TensorMode(model), (x,))
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        macs = analyzer.total()  # mmengine counts a multiply-accumulate as one flop
    print(
        f'{args.config}: input {h}x{w}, params {count_params(model) / 1e6:.2f} M, '
        f'{macs / 1e9:.3f} GMACs (= {2 * macs / 1e9:.3f} GFLOPs at 2 ops per MAC; network '
        'outputs, without post-processing)'
    )


if __name__ == '__main__':
    main()
