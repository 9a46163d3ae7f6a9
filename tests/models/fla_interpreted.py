"""fla wiring on the CPU: flash-linear-attention's Triton kernels run under Triton's interpreter.

Not collected by the main test run (the interpreter must be switched on before Triton is first imported, and must
not leak into other tests): ``test_fla_paths.py::test_fla_wiring_under_triton_interpreter`` runs this file in a
fresh pytest process with ``TRITON_INTERPRET=1``. It checks what birdie adds around the kernels (flattening,
``cu_seqlens`` from resets and segments, reverse scans, log decays, the shared adjoint, layouts, dtypes, final
states) against the plain references, forward and gradients. The chunked ``chunk_simple_gla`` trips interpreter
limitations, so SUPRA's wiring is checked with ``fused_recurrent_simple_gla``, which has the same signature.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

if os.environ.get("TRITON_INTERPRET") != "1":
    raise RuntimeError("fla_interpreted.py needs TRITON_INTERPRET=1 set before Triton is imported; "
                       "run it through tests/models/test_fla_paths.py")

import pytest  # noqa: E402
import torch  # noqa: E402
import triton.runtime.autotuner as autotuner  # noqa: E402

import fla_checks  # noqa: E402
from birdie.models.kernels import decay_attention, scan  # noqa: E402
from birdie.models.kernels.decay_attention.fla import fla_decay_linear_attention  # noqa: E402
from birdie.models.kernels.scan.fla import fla_linear_scan  # noqa: E402

_prune_configs = autotuner.Autotuner.prune_configs


def _first_config_only(self: autotuner.Autotuner, kwargs: dict) -> list:
    """The interpreter has no device to benchmark autotuning candidates on: keep the first one."""
    return _prune_configs(self, kwargs)[:1]


autotuner.Autotuner.prune_configs = _first_config_only


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("case", fla_checks.SCAN_CASES)
def test_fla_linear_scan_matches_reference(case, reverse):
    fla_checks.assert_scan_matches_reference(fla_linear_scan, "cpu", case, reverse)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fla_decay_attention_matches_reference(dtype):
    from fla.ops.simple_gla import fused_recurrent_simple_gla

    attend = functools.partial(fla_decay_linear_attention, kernel=fused_recurrent_simple_gla)
    fla_checks.assert_decay_attention_matches_reference(attend, "cpu", dtype, tolerance=1e-5)



def _float32_on_fla(tensor: torch.Tensor) -> bool:
    return tensor.dtype != torch.float64


@contextlib.contextmanager
def _fla_dispatch_on_cpu() -> Iterator[None]:
    """The models dispatch CPU tensors as they would CUDA ones (SUPRA on the fused kernel the interpreter runs)."""
    from fla.ops.simple_gla import fused_recurrent_simple_gla

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scan, "uses_fla", _float32_on_fla)
        patch.setattr(decay_attention, "uses_fla", _float32_on_fla)
        patch.setattr(decay_attention, "fla_decay_linear_attention",
                      functools.partial(fla_decay_linear_attention, kernel=fused_recurrent_simple_gla))
        yield


@pytest.mark.parametrize("family, bidirectional_layers", fla_checks.MODEL_CASES)
def test_models_on_the_fla_paths_match_the_chunked_forms(family, bidirectional_layers):
    fla_checks.assert_model_matches_chunked(family, bidirectional_layers, "cpu", _fla_dispatch_on_cpu(), 1e-5)
