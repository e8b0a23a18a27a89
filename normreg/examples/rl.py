"""An actor-critic agent for CartPole whose policy may pick its actions in BatchNorm's train mode.

The essay's first story: a policy with batch norm computed its actions in train mode. Here the policy
normalises the state it is given (BatchNorm on the input, a learned observation normaliser). In train mode
BatchNorm normalises with the statistics of the batch it is given, so when the batch is the handful of
states from a few parallel environments, each state is judged only relative to the others: the policy sees
"further left than its neighbours", not "falling to the left", and can barely act on its own state. With a
single environment the essay's version fed the network all zeros; PyTorch refuses outright ("Expected more
than 1 value per channel when training"). With several environments it runs, and quietly learns little.

The fix is one line each way: put the policy in eval mode to choose actions (BatchNorm then uses its
running statistics, which do not depend on the other rows) and back in train mode for the update.
``act_mode`` selects which of the two the agent does. With LayerNorm, or no normalisation, both modes
compute exactly the same actions.

The agent is PPO, the clipped form of advantage actor-critic, with generalised advantage estimation:
``n_envs`` environments step in lockstep for ``rollout_len`` steps, then the rollout is shuffled into
minibatches for a few passes of gradient steps. Two choices are there for BatchNorm's sake. Shuffling: the
consecutive steps of one episode are nearly the same state, and a batch of them would give statistics that
describe one moment, not the policy's states. The clipped probability ratio: acting in eval mode and
learning in train mode makes the two modes of one network act slightly differently, so the rollout is a
little off-policy for the network being trained; the ratio against the probabilities the acting policy
actually used corrects for that, and the clip stops it from running away. (Plain A2C, without the
ratio, learnt and then collapsed on most seeds with BatchNorm; without BatchNorm it did not.) Only the
policy has the ``norm`` option; the critic is a plain MLP, since it never picks an action.
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

Batch = dict[str, Tensor]


def _norm_layer(norm: str, width: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm1d(width)
    if norm == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, n_out)
    )


class PolicyNet(nn.Module):
    """Maps a batch of states to action logits: a norm on the raw state, then a two-layer tanh MLP.

    CartPole's four state variables have different scales, which is why one would normalise the input.
    """

    def __init__(self, n_obs: int, n_actions: int, hidden: int = 64, norm: str = "batch") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"Expected argument `norm` to be one of {NORMS} but got {norm!r}")
        self.norm = _norm_layer(norm, n_obs)
        self.mlp = _mlp(n_obs, hidden, n_actions)

    def forward(self, obs: Tensor) -> Tensor:
        return self.mlp(self.norm(obs))


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
        new_obs = np.empty_like(obs)
        rewards = np.empty(len(self.envs), dtype=np.float32)
        terminated = np.zeros(len(self.envs), dtype=bool)
        ended = np.zeros(len(self.envs), dtype=bool)
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
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
    """Per epoch, collects ``rollouts_per_epoch`` rollouts with the agent's current policy and yields each
    one ``passes`` times over, as shuffled minibatches of ``minibatch_size`` steps.

    Collection is lazy: the next rollout is played only after the previous one's updates, so it always
    follows the latest policy. The environments persist across rollouts and epochs.
    """

    def __init__(
        self,
        agent: CartPolePPO,
        envs: ParallelEnvs,
        rollout_len: int,
        rollouts_per_epoch: int,
        minibatch_size: int,
        passes: int,
    ) -> None:
        self.agent = agent
        self.envs = envs
        self.rollout_len = rollout_len
        self.rollouts_per_epoch = rollouts_per_epoch
        self.minibatch_size = minibatch_size
        self.passes = passes

    def __iter__(self) -> Iterator[Batch]:
        for _ in range(self.rollouts_per_epoch):
            rollout = self.agent.collect_rollout(self.envs, self.rollout_len)
            for _ in range(self.passes):
                order = torch.randperm(len(rollout["action"]))
                for start in range(0, len(order), self.minibatch_size):
                    idx = order[start : start + self.minibatch_size]
                    yield {key: value[idx] for key, value in rollout.items()}


class CartPolePPO(pl.LightningModule):
    """PPO on a classic-control task, with a policy that picks actions in eval or in train mode.

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
        lr: float = 1e-3,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        value_coef: float = 0.5,
        entropy_coef: float = 0.01,
        clip: float = 0.2,
        rollout_len: int = 64,
        minibatch_size: int = 256,
        passes: int = 4,
        rollouts_per_epoch: int = 5,
        eval_episodes: int = 32,
        eval_seed: int = 10_000,
    ) -> None:
        """Configure the agent.

        Args:
            norm: the policy's normalisation of its input state: "batch", "layer" or "none".
            act_mode: the mode the policy is in when it picks actions: "eval" (correct) or "train" (the bug).
            n_envs: environments stepped in parallel; one batch of actions holds one state from each.
            env_id: a gymnasium environment with a vector observation and discrete actions.
            hidden: width of the policy's and the critic's hidden layers.
            lr: Adam learning rate, for policy and critic alike.
            gamma: discount factor.
            gae_lambda: GAE's bias-variance trade-off; 1 is Monte-Carlo returns, 0 one-step TD.
            value_coef: weight of the critic's squared error in the loss.
            entropy_coef: weight of the entropy bonus that keeps the policy exploring.
            clip: how far the probability ratio may move from 1 before the objective stops rewarding it.
            rollout_len: steps per environment in one rollout, which holds ``rollout_len * n_envs`` steps.
            minibatch_size: steps per gradient step.
            passes: shuffled passes over each rollout; each pass uses every step once.
            rollouts_per_epoch: rollouts collected per training epoch.
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
                "Expected argument `eval_episodes` to be a positive multiple of "
                f"n_envs={n_envs} but got {eval_episodes}"
            )
        self.save_hyperparameters()
        probe = gym.make(env_id)
        n_obs = int(np.prod(probe.observation_space.shape))
        n_actions = int(probe.action_space.n)
        probe.close()
        self.policy = PolicyNet(n_obs, n_actions, hidden=hidden, norm=norm)
        self.critic = _mlp(n_obs, hidden, 1)
        self.train_envs: ParallelEnvs | None = None
        self._returns_seen: list[int] = []  # per training env, the episodes already counted in `train_return`

    # ---- acting -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def act(self, obs: np.ndarray, greedy: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Pick one action per row of ``obs``, with the policy in the mode ``act_mode`` names."""
        was_training = self.policy.training
        self.policy.train(self.hparams.act_mode == "train")
        logits = self.policy(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        self.policy.train(was_training)
        dist = Categorical(logits=logits)
        actions = logits.argmax(dim=-1) if greedy else dist.sample()
        return actions.cpu().numpy(), dist.log_prob(actions).cpu().numpy()

    @torch.no_grad()
    def collect_rollout(self, envs: ParallelEnvs, rollout_len: int) -> Batch:
        """Play ``rollout_len`` steps in every env; return the steps, flattened, with advantages and returns.

        Advantages are GAE estimates. A terminated episode has no future value; one cut by the time limit or
        by the end of the rollout is bootstrapped with the critic's value of the state it reached.
        """
        hp = self.hparams
        steps: list[tuple[np.ndarray, ...]] = []
        for _ in range(rollout_len):
            action, log_prob = self.act(envs.obs)
            steps.append((action, log_prob, *envs.step(action)))
        action, log_prob, obs, reward, next_obs, terminated, ended = (
            torch.as_tensor(np.stack(col)) for col in zip(*steps, strict=True)
        )
        obs, next_obs = obs.to(self.device), next_obs.to(self.device)
        values = self.critic(obs).squeeze(-1)  # [steps, envs]
        next_values = self.critic(next_obs).squeeze(-1)
        deltas = reward.to(self.device) + hp.gamma * (~terminated).to(self.device) * next_values - values
        continues = (~ended).to(self.device).float()
        advantages = torch.zeros_like(values)
        running = torch.zeros_like(values[0])
        for t in reversed(range(rollout_len)):
            running = deltas[t] + hp.gamma * hp.gae_lambda * continues[t] * running
            advantages[t] = running
        return {
            "obs": obs.flatten(0, 1),
            "action": action.flatten(0, 1).to(self.device),
            "log_prob": log_prob.flatten(0, 1).to(self.device),
            "advantage": advantages.flatten(0, 1),
            "return": (advantages + values).flatten(0, 1),
        }

    # ---- training -----------------------------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        # Environment seeds follow the run seed (set by seed_everything), so a run is reproducible.
        hp = self.hparams
        seed = (torch.initial_seed() * 1_000) % 2**31
        self.train_envs = ParallelEnvs(hp.env_id, hp.n_envs, seed)
        self._returns_seen = [0] * hp.n_envs
        dataset = RolloutDataset(
            self, self.train_envs, hp.rollout_len, hp.rollouts_per_epoch, hp.minibatch_size, hp.passes
        )
        # batch_size=None: the dataset yields ready-made minibatches.
        return DataLoader(dataset, batch_size=None)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        hp = self.hparams
        advantage = batch["advantage"]
        # Normalised advantages make the step size independent of the reward scale.
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        dist = Categorical(logits=self.policy(batch["obs"]))  # train mode: BatchNorm sees the minibatch
        # The ratio compares the network being trained with the probabilities the actions were drawn with.
        ratio = torch.exp(dist.log_prob(batch["action"]) - batch["log_prob"])
        policy_loss = -torch.min(ratio * advantage, ratio.clamp(1 - hp.clip, 1 + hp.clip) * advantage).mean()
        value_loss = F.mse_loss(self.critic(batch["obs"]).squeeze(-1), batch["return"])
        loss = policy_loss + hp.value_coef * value_loss - hp.entropy_coef * dist.entropy().mean()
        self.log("train_loss", loss, batch_size=len(advantage))
        # The training episodes that ended since the last step: their mean return, weighted by their number, makes
        # a per-epoch learning curve that costs no extra episode (test_step's greedy evaluation plays its own).
        if self.train_envs is not None:
            new = [r for done, k in zip(self.train_envs.finished, self._returns_seen) for r in done[k:]]
            self._returns_seen = [len(done) for done in self.train_envs.finished]
            if new:
                self.log("train_return", float(np.mean(new)), on_step=False, on_epoch=True, batch_size=len(new))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    # ---- evaluation ---------------------------------------------------------------------------------------

    def test_dataloader(self) -> DataLoader:
        # One dummy item: the evaluation plays its own episodes and needs only to be triggered once.
        return DataLoader(TensorDataset(torch.zeros(1)), batch_size=1)

    def test_step(self, batch: list[Tensor], batch_idx: int) -> None:
        hp = self.hparams
        per_env = hp.eval_episodes // hp.n_envs
        envs = ParallelEnvs(hp.env_id, hp.n_envs, hp.eval_seed)
        # Every env keeps stepping until all have played their share, so a batch of actions always holds
        # n_envs states, as in training; only each env's first ``per_env`` episodes count, which keeps the
        # mean unbiased (taking the first episodes to finish would favour short ones).
        while min(len(done) for done in envs.finished) < per_env:
            envs.step(self.act(envs.obs, greedy=True)[0])
        envs.close()
        returns = [ret for done in envs.finished for ret in done[:per_env]]
        self.log("mean_return", float(np.mean(returns)), on_epoch=True, batch_size=1)
