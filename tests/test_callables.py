import pytest

from birdie.callables import import_callable
from birdie.checks import ConfigError


def test_a_named_function_is_imported():
    assert import_callable("birdie.callables:import_callable") is import_callable


@pytest.mark.parametrize("spec, message", [
    ("birdie.callables", "must look like 'package.module:function'"),
    (":import_callable", "must look like 'package.module:function'"),
    ("birdie.no_such_module:f", "cannot be imported"),
    ("birdie.callables:missing", "cannot be imported"),
    ("birdie.callables:annotations", "is not callable"),
])
def test_errors_name_the_option_and_the_problem(spec, message):
    with pytest.raises(ConfigError, match=f"reward.callable={spec!r} {message}"):
        import_callable(spec, "reward.callable")
