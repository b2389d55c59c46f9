"""User objectives for ``nas.simulate.objective`` in the tests (imported by path)."""

CALLS = []


def curve(arch, epochs, seed):
    """A learning curve: wider last stages end higher; every call is recorded."""
    CALLS.append((epochs, seed))
    width = arch['rows'][-1]['out_channels'] if 'rows' in arch else 1
    return width * (1.0 - 0.5 ** float(epochs))


def wrong_signature(arch):
    return 0.0
