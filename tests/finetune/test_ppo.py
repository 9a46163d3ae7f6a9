"""PPO rollouts and updates on a tiny random model: prompt rendering, masks, the easylm_compat quirk, bad input."""

import numpy as np
import pytest
import torch

from birdie.finetune.chat import render_chat
from birdie.finetune.ppo import PPOConfig, PPOTrainer
from birdie.finetune.rewards import RewardError, StoryAnswerReward, checked_scores, load_callable
from birdie.finetune.rollout import PromptError, check_prompts, prompt_ids, response_mask
from birdie.models import create
from birdie.tokenizers import ByteTokenizer

TEXTS = ["Say a", "Say b"]


def count_a(prompts, completions):
    return [completion.count("a") / 4 for completion in completions]


def trainer(**overrides):
    torch.manual_seed(0)
    tokenizer = ByteTokenizer()
    model = create("transformer-tiny", vocab_size=tokenizer.vocab_size)
    config = PPOConfig(**{"max_new_tokens": 4, "rollouts_per_prompt": 2, "temperature": 1.0, "lr": 1e-3,
                          "critic_lr": 1e-3, **overrides})
    prompts = [torch.tensor(prompt_ids([{"role": "user", "content": t}], tokenizer)) for t in TEXTS]
    return PPOTrainer(model, tokenizer, overrides.pop("reward", count_a), config), prompts


def test_prompt_ids_are_the_context_sft_trains_the_answer_after():
    tokenizer = ByteTokenizer()
    messages = [{"role": "user", "content": "Who is the fox?"}]
    ids, mask = render_chat(messages + [{"role": "assistant", "content": "Tom"}], tokenizer)
    first_answer_token = int(np.argmax(mask))
    np.testing.assert_array_equal(prompt_ids(messages, tokenizer), ids[:first_answer_token])


def test_response_mask_keeps_the_first_eos_only():
    responses = torch.tensor([[5, 6, 2, 2], [5, 5, 5, 5], [2, 7, 2, 7]])
    want = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.float)
    torch.testing.assert_close(response_mask(responses, 2), want)


def test_easylm_compat_makes_the_ratio_one_and_standard_ppo_does_not():
    compat, prompts = trainer(easylm_compat=True, ppo_epochs=2, mini_batch_prompts=1)
    metrics = compat.step(prompts, TEXTS)
    assert metrics["policy/clipfrac_avg"] == 0 and metrics["policy/approxkl_avg"] == 0
    standard, prompts = trainer(ppo_epochs=2, mini_batch_prompts=1)
    metrics = standard.step(prompts, TEXTS)
    assert metrics["policy/approxkl_avg"] > 0  # later mini-batches see updated parameters against fixed old logps
    for name in ("objective/kl", "objective/entropy", "loss/value_avg", "env/reward_mean", "ppo/loss/policy",
                 "tokens/responses_len_mean", "tokens/rollout_per_s"):
        assert name in metrics


def test_grpo_has_no_critic_and_updates_the_policy():
    grpo, prompts = trainer(algorithm="grpo")
    assert grpo.critic is None
    before = [p.detach().clone() for p in grpo.policy.parameters()]
    metrics = grpo.step(prompts, TEXTS)
    assert "loss/value_avg" not in metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, grpo.policy.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before, grpo.reference.parameters()))


def test_reference_and_first_old_logps_agree_so_the_first_kl_is_zero():
    ppo, prompts = trainer()
    assert ppo.step(prompts, TEXTS)["objective/kl"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("reward, message", [
    (lambda p, c: 1 / 0, "raised ZeroDivisionError"),
    (lambda p, c: [float("nan")] * len(c), "returned nan for completion 0"),
    (lambda p, c: [1.0], "returned 1 scores for 2 completions"),
    (lambda p, c: "bad", "must return a list of floats"),
])
def test_bad_reward_functions_are_named(reward, message):
    with pytest.raises(RewardError, match=message):
        checked_scores(reward, ["p", "q"], ["a", "b"])


def test_load_callable_errors():
    import operator

    assert load_callable("operator:add") is operator.add
    with pytest.raises(RewardError, match="module:function|package.module:function"):
        load_callable("count_a")
    with pytest.raises(RewardError, match="cannot be imported"):
        load_callable("operator:missing")


def test_bad_prompts_are_named():
    with pytest.raises(PromptError, match="no prompts"):
        check_prompts([], 4, 64)
    with pytest.raises(PromptError, match="prompt 1 is empty"):
        check_prompts([np.ones(3), np.ones(0)], 4, 64)
    with pytest.raises(PromptError, match="prompt 0 has 62 tokens.*context of 64"):
        check_prompts([np.ones(62)], 4, 64)


def test_config_validation():
    with pytest.raises(ValueError, match="rollouts_per_prompt >= 2"):
        PPOConfig(algorithm="rloo", rollouts_per_prompt=1)
    with pytest.raises(ValueError, match="one of"):
        PPOConfig(algorithm="dpo")


def test_story_answer_reward_gives_graded_credit():
    one = StoryAnswerReward.one
    assert one("Tom", " Tom") == 1.0  # the answer exactly (surrounding spaces ignored)
    assert one("Tom", "To") == pytest.approx(2 / 3)  # a missing character earns nothing
    assert one("Tom", "Xom") == pytest.approx((0.5 + 1 + 1) / 3)  # another letter: half
    assert one("Tom", "mot") == pytest.approx((0.75 + 1 + 0.75) / 3)  # the answer's letters out of place, any case
    assert one("Tom", "Tom and") == pytest.approx((3 + 4 * 0.5) / 7)  # saying more dilutes
    assert one("Tom", "T<|mask_3|>7") == pytest.approx(1 / 3)  # a special token is one character earning 0
    assert one("Tom", "") == 0.0


def test_critic_from_a_reward_model_starts_at_its_scores():
    from birdie.finetune.reward_model import RewardModel
    from birdie.finetune.rollout import ValueModel

    torch.manual_seed(0)
    reward_model = RewardModel(create("transformer-tiny", vocab_size=ByteTokenizer().vocab_size)).eval()
    critic = ValueModel.from_reward_model(reward_model)
    ids = torch.randint(0, 256, (3, 9))
    torch.testing.assert_close(critic(ids)[:, -1], reward_model(ids))
    critic.head.weight.data.add_(1.0)  # a copy: training the critic leaves the reward model alone
    assert not torch.equal(critic.head.weight, reward_model.score_head.weight)
