"""The module names issue 19 renamed still import, answer the same objects and warn with
the new place (users' scripts import the old names)."""

import warnings

import pytest


@pytest.mark.parametrize(
    'old, name, new, new_name',
    [
        ('gpunet_mm.analysis', 'count_params', 'gpunet_mm.complexity', 'count_params'),
        ('gpunet_mm.analysis', 'complexity_table', 'gpunet_mm.complexity', 'complexity_table'),
        (
            'gpunet_mm.analysis',
            'build_gpunet_classifier',
            'gpunet_mm.models.classifiers',
            'build_release_classifier',
        ),
        ('gpunet_mm.nas.functions', 'ackley', 'gpunet_mm.nas.objectives', 'ackley'),
        (
            'gpunet_mm.nas.functions',
            'latency_proxy',
            'gpunet_mm.nas.latency_proxy',
            'latency_proxy',
        ),
        (
            'gpunet_mm.compat',
            'trusted_checkpoints',
            'gpunet_mm.safe_checkpoint',
            'trusted_checkpoints',
        ),
    ],
)
def test_an_old_name_is_the_new_object_with_a_warning_naming_it(old, name, new, new_name):
    import importlib

    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    with pytest.warns(DeprecationWarning) as record:
        value = getattr(old_module, name)
    assert value is getattr(new_module, new_name)
    message = str(record[0].message)
    assert f'{old}.{name}' in message and new in message and new_name in message, message


@pytest.mark.parametrize('old', ['gpunet_mm.analysis', 'gpunet_mm.nas.functions'])
def test_a_name_the_old_module_never_had_is_an_attribute_error_without_warning(old):
    import importlib

    module = importlib.import_module(old)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a warning here would raise instead of AttributeError
        with pytest.raises(AttributeError, match='no_such_name'):
            module.no_such_name  # noqa: B018


def test_from_import_of_the_old_name_works():
    """What users' scripts wrote: ``from gpunet_mm.analysis import count_flops``."""
    from gpunet_mm.complexity import count_flops as new

    with pytest.warns(DeprecationWarning, match='gpunet_mm.complexity'):
        from gpunet_mm.analysis import count_flops
    assert count_flops is new
