"""dpo_loss against a naive per-pair implementation (and TRL's when installed); BT loss; sequence log-probs."""

import math

import pytest
import torch

from birdie.finetune.losses import dpo_loss, reward_model_loss, sequence_logps


def naive_dpo(pc, pr, rc, rr, beta, eps, loss_type):
    out = []
    for a, b, c, d in zip(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist()):
        delta = (a - b) - (c - d)
        if loss_type == "ipo":
            out.append((delta - 1 / (2 * beta)) ** 2)
        else:
            sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
            out.append(-(1 - eps) * math.log(sig(beta * delta)) - eps * math.log(sig(-beta * delta)))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("beta, eps, loss_type", [(0.1, 0.0, "sigmoid"), (0.5, 0.2, "sigmoid"), (0.1, 0.0, "ipo"),
                                                  (1.0, 0.0, "ipo")])
def test_dpo_loss_equals_naive(beta, eps, loss_type):
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(16, generator=g, dtype=torch.float64) * 5 - 20 for _ in range(4))
    losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=eps, loss_type=loss_type)
    torch.testing.assert_close(losses, naive_dpo(pc, pr, rc, rr, beta, eps, loss_type))
    torch.testing.assert_close(chosen, beta * (pc - rc))
    torch.testing.assert_close(rejected, beta * (pr - rr))


def test_dpo_at_init_is_log2_and_gradient_flows():
    pc = torch.tensor([-3.0, -7.0], requires_grad=True)
    losses, chosen, _ = dpo_loss(pc, torch.tensor([-4.0, -2.0]), pc.detach(), torch.tensor([-4.0, -2.0]))
    torch.testing.assert_close(losses, torch.full((2,), math.log(2)))
    assert not chosen.requires_grad
    losses.sum().backward()
    assert (pc.grad < 0).all()  # raising the chosen log-prob lowers the loss


def test_dpo_rejects_bad_arguments():
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="loss_type"):
        dpo_loss(x, x, x, x, loss_type="hinge")
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(x, x, x, x, beta=0)


def _trl_dpo(loss_type, per_token, ref, beta):
    """TRL's own DPOTrainer._compute_loss on given per-token policy log-probs and precomputed reference sums,
    with the model and accelerator replaced by stand-ins (so no HF model is needed)."""
    import collections
    import types

    from trl.trainer.dpo_trainer import DPOTrainer

    rows, length = per_token.shape
    zeros = torch.zeros(rows, length)

    class Model:
        training = True

        def __call__(self, **kwargs):
            return types.SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros,
                                         is_top1=zeros.bool())

    trainer = DPOTrainer.__new__(DPOTrainer)
    trainer.model = Model()
    trainer.accelerator = types.SimpleNamespace(device="cpu", gather_for_metrics=lambda x: x, gather=lambda x: x)
    trainer.aux_loss_enabled, trainer.ld_alpha, trainer.precompute_ref_logps = False, None, True
    trainer.f_divergence_type, trainer.loss_types, trainer.loss_weights = "reverse_kl", [loss_type], [1.0]
    trainer.beta, trainer.label_smoothing, trainer.use_weighting = beta, 0.0, False
    trainer._metrics = collections.defaultdict(lambda: collections.defaultdict(list))
    trainer._total_train_tokens, trainer._tp_size = 0, 1
    mask = torch.ones(rows, length + 1, dtype=torch.long)
    half = rows // 2
    inputs = {"input_ids": torch.zeros(rows, length + 1, dtype=torch.long), "attention_mask": mask,
              "completion_mask": mask, "ref_chosen_logps": ref[:half], "ref_rejected_logps": ref[half:]}
    loss = trainer._compute_loss(trainer.model, inputs, False)
    return float(loss), {k: v[-1] for k, v in trainer._metrics["train"].items()}


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_loss_equals_trl(loss_type):
    pytest.importorskip("trl")
    g = torch.Generator().manual_seed(1)
    per_token = -torch.rand(8, 5, generator=g) * 3
    ref = -torch.rand(8, generator=g) * 15
    trl_loss, metrics = _trl_dpo(loss_type, per_token, ref, beta=0.1)
    logps = per_token.sum(1)
    pc, pr, rc, rr = logps[:4], logps[4:], ref[:4], ref[4:]
    if loss_type == "ipo":  # TRL divides each side's log-ratio by its completion length (6 tokens here); EasyLM not
        pc, pr, rc, rr = pc / 6, pr / 6, rc / 6, rr / 6
    losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.1, loss_type=loss_type)
    assert float(losses.mean()) == pytest.approx(trl_loss, rel=1e-5)
    if loss_type == "sigmoid":
        assert float(chosen.mean()) == pytest.approx(metrics["rewards/chosen"], rel=1e-5)
        assert float(rejected.mean()) == pytest.approx(metrics["rewards/rejected"], rel=1e-5)
        assert float((chosen > rejected).float().mean()) == pytest.approx(metrics["rewards/accuracies"])


def test_reward_model_loss_with_margin():
    c, r = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    torch.testing.assert_close(reward_model_loss(c, r), -torch.nn.functional.logsigmoid(c - r))
    torch.testing.assert_close(reward_model_loss(c, r, torch.tensor([1.0, 0.0])),
                               -torch.nn.functional.logsigmoid(torch.tensor([0.0, -1.0])))


def test_sequence_logps_per_row_and_per_segment():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 5, generator=g)
    labels = torch.tensor([[1, 2, -100, 3, 4, -100], [0, -100, 1, 1, -100, -100]])
    logp = torch.log_softmax(logits, -1)
    naive = [sum(float(logp[b, t, labels[b, t]]) for t in range(6) if labels[b, t] >= 0) for b in range(2)]
    torch.testing.assert_close(sequence_logps(logits, labels), torch.tensor(naive))
    segments = torch.tensor([[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 0, 0]])
    per = sequence_logps(logits, labels, segments)
    assert per.shape == (2, 2)
    torch.testing.assert_close(per[0, 0], logp[0, 0, 1] + logp[0, 1, 2])
    torch.testing.assert_close(per[0, 1], logp[0, 3, 3] + logp[0, 4, 4])
    torch.testing.assert_close(per[1, 1], torch.tensor(0.0))
