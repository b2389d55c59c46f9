from setuptools import find_packages, setup


def readme() -> str:
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def version() -> str:
    ns: dict = {}
    with open('gpunet_mm/version.py', encoding='utf-8') as f:
        exec(f.read(), ns)
    return ns['__version__']


setup(
    name='gpunet_mm',
    version=version(),
    description='GPUNet backbones, latency-aware NAS and deployment for the OpenMMLab stack',
    long_description=readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    package_data={
        # configs/, tools/ and model-index.yml in gpunet_mm/.mim, as mmdet/mmpretrain ship
        # theirs: `_base_ = 'gpunet_mm::...'` and mim find them in an installed package
        'gpunet_mm': [
            '.mim/model-index.yml',
            '.mim/configs/**/*.py',
            '.mim/configs/**/*.yml',
            '.mim/tools/**/*.py',
            '.mim/tools/**/*.sh',
        ],
        'gpunet_mm.hub': ['data/*.jsonl'],
        # data/small_retinanet.py: the latency proxy detector template (a config file)
        'gpunet_mm.deploy': ['data/*.json', 'data/*.py'],
    },
    python_requires='>=3.9',
    install_requires=['mmengine>=0.10.0', 'numpy', 'scipy', 'scikit-learn', 'pydantic>=2'],
    extras_require={
        'det': ['mmdet>=3.0.0', 'mmcv>=2.0.0'],
        'cls': ['mmpretrain>=1.0.0'],
        'deploy': ['onnx', 'onnxruntime', 'onnxconverter-common'],
        'trt': ['tensorrt>=10.0'],
        'search': ['optuna', 'ray[default]'],
        # the multi-fidelity peers of benchmarks/benchmark_multifidelity.py (DEHB)
        'benchmarks': ['dehb'],
        'tests': ['pytest', 'pytest-timeout', 'ruff', 'hypothesis'],
        'docs': ['sphinx', 'myst-parser', 'furo'],
    },
    license='Apache License 2.0',
    zip_safe=False,
)
