"""Weight decay follows the paper: matrices decay; norms, embeddings, biases, Hawk's RG-LRU and the Gated SSM's
forget gate do not (Birdie §5)."""

import pytest
from torch import nn

from birdie.models import create
from birdie.train.config import OptimizerConfig
from birdie.train.optim import build_optimizer, decay_mask

# Per family: the parameters of layer 0 that must decay, and those that must not (beyond the shell's norms).
DECAYED = {
    "transformer": {"attention.in_proj.weight", "attention.out_proj.weight", "feed_forward.w12.weight",
                    "feed_forward.w3.weight"},
    "supra": {"attention.in_proj.weight", "attention.out_proj.weight", "attention._totrain_embed.weight",
              "feed_forward.w12.weight", "feed_forward.w3.weight"},
    "hawk": {"attention.in_proj.weight", "attention.conv_weight", "attention.out_proj.weight",
             "feed_forward.w12.weight", "feed_forward.w3.weight"},
    "gated_ssm": {"attention.in_proj.weight", "attention.out_proj.weight"},
}
NOT_DECAYED_MATRICES = {
    "transformer": set(),
    "supra": set(),
    "hawk": {"attention.gate_weight"},
    "gated_ssm": {"attention.forget_proj.weight"},
}


@pytest.mark.parametrize("family", sorted(DECAYED))
def test_decay_mask_decays_exactly_the_non_excluded_matrices(family):
    model = create(f"{family.replace('_', '-')}-tiny")
    mask = decay_mask(model)
    assert set(mask) == {name for name, _ in model.named_parameters()}
    layer0 = {name.removeprefix("layers.0."): decayed for name, decayed in mask.items()
              if name.startswith("layers.0.")}
    assert {name for name, decayed in layer0.items() if decayed} == DECAYED[family]
    assert NOT_DECAYED_MATRICES[family] <= set(layer0)
    assert not mask["tok_embeddings.weight"] and not mask["norm.weight"] and mask["output.weight"]
    params = dict(model.named_parameters())
    for name, decayed in mask.items():
        is_excluded_matrix = name.split(".", 2)[-1] in NOT_DECAYED_MATRICES[family]
        if params[name].ndim < 2 or is_excluded_matrix or name == "tok_embeddings.weight":
            assert not decayed, name


def test_no_weight_decay_names_each_layer_of_the_paper_exclusions():
    hawk = create("hawk-tiny")
    assert hawk.no_weight_decay() == {f"layers.{i}.attention.{name}" for i in range(hawk.config.n_layers)
                                      for name in ("gate_weight", "gate_bias", "decay_param")}
    ssm = create("gated-ssm-tiny")
    assert ssm.no_weight_decay() == {f"layers.{i}.attention.forget_proj.{kind}" for i in range(ssm.config.n_layers)
                                     for kind in ("weight", "bias")}
    assert create("transformer-tiny").no_weight_decay() == set()


def test_excluded_parameters_land_in_the_group_without_decay():
    model = create("hawk-tiny")
    optimizer = build_optimizer(model, OptimizerConfig(lr=1e-3, weight_decay=0.1))
    plain = {id(p) for group in optimizer.param_groups if group["weight_decay"] == 0.0 for p in group["params"]}
    decayed = {id(p) for group in optimizer.param_groups if group["weight_decay"] == 0.1 for p in group["params"]}
    assert id(model.layers[1].attention.gate_weight) in plain
    assert id(model.layers[1].attention.in_proj.weight) in decayed
    assert len(plain) + len(decayed) == len({id(p) for p in model.parameters()})


def test_decay_mask_sees_through_wrappers():
    model = create("gated-ssm-tiny")
    wrapped = nn.Sequential()
    wrapped.module = model  # the attribute DDP uses; names gain a "module." prefix
    mask = decay_mask(wrapped)
    assert mask["module.layers.0.attention.in_proj.weight"]
    assert not mask["module.layers.0.attention.forget_proj.weight"]


def test_a_no_weight_decay_name_that_is_not_a_parameter_is_an_error():
    model = create("transformer-tiny")
    model.no_weight_decay = lambda: {"layers.0.attention.wq.weight"}
    with pytest.raises(ValueError, match=r"names \['layers.0.attention.wq.weight'\], which are not parameters"):
        decay_mask(model)

