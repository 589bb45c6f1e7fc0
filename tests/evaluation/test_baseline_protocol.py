"""The PPO baselines are scored as stable-baselines3 trains and scores them (actions clipped to the
action space), and our sampler's return for such a policy equals SB3's own evaluate_policy."""

import gymnasium
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

import envs  # noqa: F401  (registers metarl/... with gymnasium)
from metarl.evaluation.baselines import sb3_actor_to_params
from metarl.evaluation.protocol import mean_ci
from metarl.sampling import Sampler

TASK = {"velocity": 1.0}
HORIZON = 50
EPISODES = 40


def test_our_return_of_an_sb3_policy_equals_sb3_evaluate_policy():
    venv = VecNormalize(make_vec_env(lambda: gymnasium.make("metarl/HalfCheetahVel-v0", task=TASK, horizon=HORIZON),
                                     n_envs=2, seed=0))
    # a briefly trained policy whose actions often leave [-1, 1] (std e^0.3), so clipping matters
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=64, n_epochs=2, seed=0, device="cpu",
                policy_kwargs={"net_arch": {"pi": [16], "vf": [16]}, "log_std_init": 0.3})
    model.learn(1024)
    venv.training, venv.norm_reward = False, False
    sb3_returns, _ = evaluate_policy(model, venv, n_eval_episodes=EPISODES, deterministic=False,
                                     return_episode_rewards=True)
    params = sb3_actor_to_params(model, venv.obs_rms.mean, venv.obs_rms.var, venv.epsilon, action_scale=0.1)
    ours = {}
    for clip in (True, False):
        sampler = Sampler("HalfCheetahVel", 1, EPISODES, HORIZON, seed=1, action_scale=0.1, clip_actions=clip)
        ours[clip] = sampler.sample(params, [TASK]).rewards.sum(-1)[0].double().numpy()
    sb3_mean, lo, hi = mean_ci(np.asarray(sb3_returns))
    our_mean, our_lo, our_hi = mean_ci(ours[True])
    # the two means agree within the noise: 3.5 standard errors of their difference (the combined 95%
    # half-width is about 2 of them, which a change of seed or library would exceed 5 % of the time)
    noise = np.hypot(hi - sb3_mean, our_hi - our_mean)
    assert abs(our_mean - sb3_mean) < 1.75 * noise, (our_mean, sb3_mean)
    print(f"SB3 {sb3_mean:.2f} [{lo:.2f}, {hi:.2f}], ours clipped {our_mean:.2f}, unclipped {ours[False].mean():.2f}")
    # unclipped actions pay more control cost: the same policy scores lower, well outside the noise
    assert ours[False].mean() < our_mean - 2 * noise
