"""An actor-critic agent for CartPole whose policy may pick its actions in BatchNorm's train mode.

The essay's first story: a policy with batch norm computed its actions in train mode. In train mode
BatchNorm normalises each feature with the statistics of the batch it is given, so when the batch is the
handful of states from a few parallel environments, each state is judged only relative to the others: the
policy sees "more to the left than its neighbours", not "falling to the left", and can barely act on its
own state. The update, computed on a whole rollout, sees different statistics again. With one environment
PyTorch refuses outright ("Expected more than 1 value per channel when training"); with several it runs and
quietly learns less.

The fix is one line each way: put the policy in eval mode to choose actions (BatchNorm then uses its
running statistics, which do not depend on the other rows), and back in train mode for the update.
``act_mode`` selects which of the two the agent does. With LayerNorm, or no normalisation, both modes
compute exactly the same actions.

The agent is advantage actor-critic (A2C) with generalised advantage estimation: ``n_envs`` environments
step in lockstep for ``rollout_len`` steps, and each rollout is one training batch. Only the policy has the
``norm`` option; the critic is a plain MLP, since it never picks an action and its mode never matters.
"""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

NORMS = ("batch", "layer", "none")
ACT_MODES = ("eval", "train")

Rollout = dict[str, Tensor]


def _norm_layer(norm: str, width: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm1d(width)
    if norm == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


class PolicyNet(nn.Module):
    """Maps a batch of states to action logits: linear, norm, tanh, linear, tanh, linear.

    The norm sits right after the first layer, where it normalises each hidden feature; in train mode a
    BatchNorm there makes every row's features relative to the other rows in the batch.
    """

    def __init__(self, n_obs: int, n_actions: int, hidden: int = 64, norm: str = "batch", norm_at: str = "input") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"Expected argument `norm` to be one of {NORMS} but got {norm!r}")
        pre = [_norm_layer(norm, n_obs)] if norm_at == "input" else []
        mid = [_norm_layer(norm, hidden)] if norm_at == "hidden" else []
        self.net = nn.Sequential(
            *pre,
            nn.Linear(n_obs, hidden),
            *mid,
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, n_actions),
        )

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs)


class ParallelEnvs:
    """``n`` copies of one environment stepped in lockstep; an episode that ends is reset at once.

    A plain list rather than gymnasium's vector env, so that the last state of an episode (needed to
    bootstrap the value of a time-limit cut) is at hand without autoreset bookkeeping.
    """

    def __init__(self, env_id: str, n: int, seed: int) -> None:
        self.envs = [gym.make(env_id) for _ in range(n)]
        self.obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(self.envs)])
        self.returns = np.zeros(n)
        self.finished: list[list[float]] = [[] for _ in range(n)]  # returns of completed episodes, per env

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step every env; return (obs, reward, next_obs, terminated, ended) and move on to the new states.

        ``next_obs`` is the state the action led to, even where the episode then ended and ``self.obs``
        is already the first state of the next episode.
        """
        obs = self.obs
        next_obs = np.empty_like(obs)
        rewards = np.empty(len(self.envs))
        terminated = np.zeros(len(self.envs), dtype=bool)
        ended = np.zeros(len(self.envs), dtype=bool)
        new_obs = np.empty_like(obs)
        for i, (env, action) in enumerate(zip(self.envs, actions)):
            next_obs[i], rewards[i], terminated[i], truncated, _ = env.step(int(action))
            ended[i] = terminated[i] or truncated
            self.returns[i] += rewards[i]
            if ended[i]:
                self.finished[i].append(float(self.returns[i]))
                self.returns[i] = 0.0
                new_obs[i] = env.reset()[0]
            else:
                new_obs[i] = next_obs[i]
        self.obs = new_obs
        return obs, rewards, next_obs, terminated, ended

    def close(self) -> None:
        for env in self.envs:
            env.close()


class RolloutDataset(IterableDataset):
    """Yields ``rollouts_per_epoch`` fresh rollouts per epoch, collected with the agent's current policy.

    The environments persist across epochs, so an episode may span two rollouts (or two epochs).
    """

    def __init__(self, agent: "CartPoleA2C", envs: ParallelEnvs, rollout_len: int, rollouts_per_epoch: int) -> None:
        self.agent = agent
        self.envs = envs
        self.rollout_len = rollout_len
        self.rollouts_per_epoch = rollouts_per_epoch

    def __iter__(self) -> Iterator[Rollout]:
        for _ in range(self.rollouts_per_epoch):
            yield self.agent.collect_rollout(self.envs, self.rollout_len)


class CartPoleA2C(pl.LightningModule):
    """A2C on a classic-control task, with a policy that picks actions in eval or in train mode.

    ``act_mode="eval"`` is the correct agent: the policy is switched to eval mode to pick actions and back
    to train mode for the update. ``act_mode="train"`` is the bug: the policy picks actions in train mode,
    so with ``norm="batch"`` each state is normalised against the other environments' states.

    ``test_step`` plays ``eval_episodes`` greedy episodes on fixed evaluation seeds, acting the same way the
    agent acted in training (the buggy agent still acts in train mode), and logs their ``mean_return``.
    """

    def __init__(
        self,
        norm: str = "batch",
        act_mode: str = "eval",
        n_envs: int = 8,
        env_id: str = "CartPole-v1",
        hidden: int = 64,
        lr: float = 3e-3,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        value_coef: float = 0.5,
        entropy_coef: float = 0.01,
        rollout_len: int = 64,
        rollouts_per_epoch: int = 25,
        eval_episodes: int = 32,
        eval_seed: int = 10_000,
        norm_at: str = "input",
    ) -> None:
        """Configure the agent.

        Args:
            norm: the policy's normalisation after its first layer: "batch", "layer" or "none".
            act_mode: the mode the policy is in when it picks actions: "eval" (correct) or "train" (the bug).
            n_envs: environments stepped in parallel; one action batch holds one state from each.
            env_id: a gymnasium environment with a vector observation and discrete actions.
            hidden: width of the policy's and the critic's hidden layers.
            lr: Adam learning rate, for policy and critic alike.
            gamma: discount factor.
            gae_lambda: GAE's bias-variance trade-off; 1 is Monte-Carlo returns, 0 one-step TD.
            value_coef: weight of the critic's squared error in the loss.
            entropy_coef: weight of the entropy bonus that keeps the policy exploring.
            rollout_len: steps per environment in one rollout; a training batch is ``rollout_len * n_envs``.
            rollouts_per_epoch: rollouts, hence updates, per training epoch.
            eval_episodes: episodes played in ``test_step``; must be a multiple of ``n_envs``.
            eval_seed: seed of the evaluation environments, fixed so every run is scored on the same starts.
        """
        super().__init__()
        if act_mode not in ACT_MODES:
            raise ValueError(f"Expected argument `act_mode` to be one of {ACT_MODES} but got {act_mode!r}")
        if n_envs < 1:
            raise ValueError(f"Expected argument `n_envs` to be at least 1 but got {n_envs}")
        if eval_episodes < 1 or eval_episodes % n_envs:
            raise ValueError(
                f"Expected argument `eval_episodes` to be a positive multiple of n_envs={n_envs} but got {eval_episodes}"
            )
        self.save_hyperparameters()
        probe = gym.make(env_id)
        n_obs = int(np.prod(probe.observation_space.shape))
        n_actions = int(probe.action_space.n)
        probe.close()
        self.policy = PolicyNet(n_obs, n_actions, hidden=hidden, norm=norm, norm_at=norm_at)
        self.critic = nn.Sequential(nn.Linear(n_obs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    # ---- acting -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: np.ndarray, greedy: bool = False) -> np.ndarray:
        """Pick one action per row of ``obs``, with the policy in the mode ``act_mode`` names."""
        was_training = self.policy.training
        self.policy.train(self.hparams.act_mode == "train")
        logits = self.policy(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        self.policy.train(was_training)
        actions = logits.argmax(dim=-1) if greedy else Categorical(logits=logits).sample()
        return actions.cpu().numpy()

    def collect_rollout(self, envs: ParallelEnvs, rollout_len: int) -> Rollout:
        """Step ``envs`` for ``rollout_len`` steps with the current policy; tensors are ``[steps, envs, ...]``."""
        columns: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "action", "reward", "next_obs", "terminated", "ended")}
        for _ in range(rollout_len):
            action = self.act(envs.obs)
            obs, reward, next_obs, terminated, ended = envs.step(action)
            for key, value in zip(columns, (obs, action, reward, next_obs, terminated, ended)):
                columns[key].append(value)
        rollout = {key: torch.as_tensor(np.stack(values)) for key, values in columns.items()}
        rollout["obs"] = rollout["obs"].float()
        rollout["next_obs"] = rollout["next_obs"].float()
        rollout["reward"] = rollout["reward"].float()
        return rollout

    # ---- training -----------------------------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        # Environment seeds follow the run seed (set by seed_everything), so a run is reproducible.
        seed = (torch.initial_seed() * 1_000) % 2**31
        self._train_envs = ParallelEnvs(self.hparams.env_id, self.hparams.n_envs, seed)
        dataset = RolloutDataset(self, self._train_envs, self.hparams.rollout_len, self.hparams.rollouts_per_epoch)
        # batch_size=None: each rollout already is a batch.
        return DataLoader(dataset, batch_size=None)

    def advantages(self, rollout: Rollout, values: Tensor) -> Tensor:
        """Generalised advantage estimates, ``[steps, envs]``; episodes that end cut the sum.

        A terminated episode has no future value; one cut by the time limit (or by the end of the rollout)
        is bootstrapped with the critic's value of the state it reached.
        """
        hp = self.hparams
        steps, n_envs = values.shape
        next_values = self.critic(rollout["next_obs"].flatten(0, 1)).view(steps, n_envs)
        not_terminated = (~rollout["terminated"]).float()
        continues = (~rollout["ended"]).float()
        deltas = rollout["reward"] + hp.gamma * not_terminated * next_values - values
        advantages = torch.zeros_like(values)
        running = torch.zeros(n_envs, device=values.device)
        for t in reversed(range(steps)):
            running = deltas[t] + hp.gamma * hp.gae_lambda * continues[t] * running
            advantages[t] = running
        return advantages

    def training_step(self, rollout: Rollout, batch_idx: int) -> Tensor:
        hp = self.hparams
        steps, n_envs = rollout["action"].shape
        obs = rollout["obs"].flatten(0, 1)
        values = self.critic(obs).view(steps, n_envs)
        with torch.no_grad():
            advantages = self.advantages(rollout, values)
            returns = advantages + values
            # Normalised advantages make the step size independent of the reward scale.
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        dist = Categorical(logits=self.policy(obs))  # train mode: BatchNorm sees the whole rollout
        log_prob = dist.log_prob(rollout["action"].flatten())
        policy_loss = -(log_prob * advantages.flatten()).mean()
        value_loss = F.mse_loss(values, returns)
        entropy = dist.entropy().mean()
        loss = policy_loss + hp.value_coef * value_loss - hp.entropy_coef * entropy
        self.log("train_loss", loss, batch_size=steps * n_envs)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    # ---- evaluation ---------------------------------------------------------------------------------------

    def test_dataloader(self) -> DataLoader:
        # One dummy item: the evaluation plays its own episodes, it needs only to be triggered once.
        return DataLoader(TensorDataset(torch.zeros(1)), batch_size=1)

    def test_step(self, batch: list[Tensor], batch_idx: int) -> None:
        hp = self.hparams
        per_env = hp.eval_episodes // hp.n_envs
        envs = ParallelEnvs(hp.env_id, hp.n_envs, hp.eval_seed)
        # Every env keeps stepping until all have played their share, so the action batch stays n_envs
        # rows, as in training; only each env's first ``per_env`` episodes count, which keeps the mean
        # unbiased (counting the first episodes to finish would favour short ones).
        while min(len(done) for done in envs.finished) < per_env:
            envs.step(self.act(envs.obs, greedy=True))
        envs.close()
        returns = [ret for done in envs.finished for ret in done[:per_env]]
        self.log("mean_return", float(np.mean(returns)), on_epoch=True, batch_size=1)
