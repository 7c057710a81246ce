"""World models (taught in chapter 12): V, M and C of Ha & Schmidhuber on ``CarRacing-v3``.

The pieces of the chapter, written once:

- the environment: :func:`make_env`, :func:`preprocess` (crop the dashboard, 64×64 frames),
  :func:`play` (several environments stepped in lockstep by one batched policy);
- data: :class:`BrownianPolicy` (random actions that wander smoothly), :func:`collect` (seeded
  episodes saved one file each, atomically; an interrupted collection resumes, a corrupt file is
  reported and collected again from its seed), :func:`load_episodes`;
- M: :func:`mdn_split`, :func:`mdn_nll` and :func:`mdn_sample` (a mixture of Gaussians per
  latent dimension, sampled at a temperature τ), :class:`MDNRNN` (an LSTM over (z, action) with
  mixture, reward and done heads, trained by ``fit()`` on every backend);
- C: :func:`controller_actions` (a linear map from [z, h] to the three actions, a whole
  population at once), :class:`WorldModelAgent` (V + M + C acting in the real environment),
  :func:`dream_returns` (many rollouts inside M at once, in ``keras.ops``), and :func:`cma_train`
  (CMA-ES from the ``cma`` library, saved after every generation and resumed after an
  interruption).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np
from keras import layers, ops

from gdlbook.data.registry import cache_dir
from gdlbook.progress import Progress

ENV_ID = "CarRacing-v3"
FRAME = 64          # V sees 64×64 RGB frames
CROP = 84           # the bottom 12 of the 96 rows are the dashboard (speed, steering bars)
ACTION_DIM = 3      # steering in [-1, 1], gas in [0, 1], brake in [0, 1]
EPISODE_KEYS = ("frames", "actions", "rewards", "terminated")


class CorruptEpisodeError(RuntimeError):
    """An episode file that cannot be read back, or whose arrays do not fit together."""


# --- the environment -------------------------------------------------------------------------

def make_env():
    """A headless ``CarRacing-v3`` (Box2D; observations are 96×96 RGB pixels)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import gymnasium as gym

    # We end episodes ourselves (``steps`` in :func:`play`), so no TimeLimit wrapper is needed;
    # the environment's own limit of 1,000 steps is kept as an upper bound.
    return gym.make(ENV_ID)


def preprocess(frames: np.ndarray) -> np.ndarray:
    """96×96 observations → 64×64 uint8 frames: drop the dashboard rows, resize (bilinear)."""
    from PIL import Image

    frames = np.asarray(frames)
    single = frames.ndim == 3
    batch = frames[None] if single else frames
    out = np.stack([np.asarray(Image.fromarray(f[:CROP]).resize((FRAME, FRAME),
                                                                  Image.BILINEAR))
                    for f in batch])
    return out[0] if single else out


class BrownianPolicy:
    """Random actions that drift: each step adds Gaussian noise to the last action, clipped.

    Uniform random actions change every 20 ms and mostly brake, so the car hardly moves and
    every frame looks alike. A random walk keeps steering and gas for a while, so the car
    drives, leaves the road and sees the grass. ``sigma`` is the noise of (steer, gas, brake)
    per step; the brake walk starts at -0.5 and is clipped at 0 for the environment, so the car
    brakes only now and then.
    """

    def __init__(self, sigma: Sequence[float] = (0.25, 0.1, 0.1), seed: int = 0):
        self.sigma = np.asarray(sigma, dtype=np.float64)
        self.seed = seed

    def reset(self, seeds: Sequence[int]) -> None:
        self.rngs = [np.random.default_rng([self.seed, int(s)]) for s in seeds]
        self.state = np.tile(np.array([0.0, 0.6, -0.5]), (len(seeds), 1))

    def act_on(self, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Actions for the episodes ``idx`` still running (all walks move, as time does)."""
        noise = np.stack([rng.normal(size=ACTION_DIM) for rng in self.rngs]) * self.sigma
        self.state = np.clip(self.state + noise, [-1.0, 0.0, -1.0], [1.0, 1.0, 1.0])
        actions = self.state.copy()
        actions[:, 2] = np.clip(actions[:, 2], 0.0, 1.0)
        return actions[idx].astype(np.float32)


def play(policy, seeds: Sequence[int], steps: int, *, keep: bool = False,
         desc: str | None = None) -> dict:
    """Run one episode per seed, all environments in lockstep, ``policy`` acting on all at once.

    ``policy.reset(seeds)`` starts its episodes; ``policy.act_on(frames, idx)`` sees the 64×64
    frames of all environments and returns the actions of those still running (indices ``idx``). An episode ends after ``steps`` steps or when
    the environment terminates it (all tiles visited, or the car left the playfield). Returns
    ``returns`` and ``lengths`` per episode and, with ``keep``, the lists ``frames``, ``actions``,
    ``rewards``, ``terminated`` of every episode (frame t is what the policy saw before action t).
    """
    seeds = [int(s) for s in seeds]
    envs = [make_env() for _ in seeds]
    obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
    policy.reset(seeds)
    n = len(seeds)
    alive = np.ones(n, dtype=bool)
    returns, lengths = np.zeros(n), np.zeros(n, dtype=int)
    log = {k: [[] for _ in seeds] for k in EPISODE_KEYS} if keep else None
    frames = preprocess(np.stack(obs))
    bar = Progress(steps, desc) if desc else None
    try:
        for _ in range(steps):
            idx = np.flatnonzero(alive)
            if not len(idx):
                break
            actions = np.asarray(policy.act_on(frames, idx))
            for j, i in enumerate(idx):
                o, r, terminated, truncated, _ = envs[i].step(actions[j])
                returns[i] += r
                lengths[i] += 1
                if keep:
                    log["frames"][i].append(frames[i])
                    log["actions"][i].append(actions[j])
                    log["rewards"][i].append(r)
                    log["terminated"][i].append(terminated)
                if terminated or truncated:
                    alive[i] = False
                else:
                    obs[i] = o
            frames = preprocess(np.stack(obs))
            if bar:
                bar.update(1)
    finally:
        if bar:
            bar.close()
        for env in envs:
            env.close()
    out = {"returns": returns, "lengths": lengths}
    if keep:
        out.update({"frames": [np.asarray(f, np.uint8) for f in log["frames"]],
                    "actions": [np.asarray(a, np.float32) for a in log["actions"]],
                    "rewards": [np.asarray(r, np.float32) for r in log["rewards"]],
                    "terminated": [np.asarray(t, bool) for t in log["terminated"]]})
    return out


# --- episodes on disk ------------------------------------------------------------------------

def episode_path(directory: Path, seed: int) -> Path:
    return Path(directory) / f"episode_{seed:06d}.npz"


def save_episode(path: Path, episode: dict) -> None:
    """Write one episode as a compressed ``.npz``, atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **{k: episode[k] for k in EPISODE_KEYS})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_episode(path: Path) -> dict:
    """Read one episode file; :class:`CorruptEpisodeError` (naming the file) if it is damaged."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            episode = {k: f[k] for k in EPISODE_KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise CorruptEpisodeError(f"{path} is not a readable episode file ({err})") from err
    t = len(episode["frames"])
    if (episode["frames"].shape[1:] != (FRAME, FRAME, 3) or episode["frames"].dtype != np.uint8
            or episode["actions"].shape != (t, ACTION_DIM) or len(episode["rewards"]) != t
            or len(episode["terminated"]) != t or t == 0):
        raise CorruptEpisodeError(f"{path}: arrays of inconsistent shapes "
                                  f"{ {k: v.shape for k, v in episode.items()} }")
    return episode


def default_directory(steps: int, seed: int) -> Path:
    """Where :func:`collect` keeps episodes: the user cache, one folder per configuration."""
    return cache_dir() / "worldmodels" / f"{ENV_ID}-brownian-{steps}steps-seed{seed}"


def collect(n_episodes: int, steps: int, *, seed: int = 0, directory: Path | None = None,
            batch: int = 4, policy: BrownianPolicy | None = None) -> list[Path]:
    """Collect ``n_episodes`` episodes of at most ``steps`` steps with a random policy.

    Episode ``i`` runs on the track of seed ``seed + i`` with the policy's noise seeded by it
    too, so a collection is reproducible, and each episode is saved on its own as soon as it
    ends: an interrupted collection, run again, collects only what is missing. Files already
    there are checked; a corrupt one is reported and collected again from its seed.
    """
    directory = Path(directory) if directory else default_directory(steps, seed)
    policy = policy or BrownianPolicy(seed=seed)
    seeds = [seed + i for i in range(n_episodes)]
    missing = []
    for s in seeds:
        path = episode_path(directory, s)
        if not path.exists():
            missing.append(s)
            continue
        try:
            load_episode(path)
        except CorruptEpisodeError as err:
            print(f"{err}; collecting episode {s} again from its seed.")
            path.unlink()
            missing.append(s)
    if len(missing) < n_episodes:
        print(f"{n_episodes - len(missing)} of {n_episodes} episodes already in {directory}.")
    if missing:
        with Progress(len(missing), f"Collecting {len(missing)} episodes", unit="episode") as bar:
            for k in range(0, len(missing), batch):
                chunk = missing[k:k + batch]
                run = play(policy, chunk, steps, keep=True)
                for j, s in enumerate(chunk):
                    save_episode(episode_path(directory, s),
                                 {key: run[key][j] for key in EPISODE_KEYS})
                bar.update(len(chunk))
    return [episode_path(directory, s) for s in seeds]


def load_episodes(paths: Sequence[Path]) -> list[dict]:
    return [load_episode(p) for p in paths]


# --- M: the mixture density network ----------------------------------------------------------

LOG_SQRT_2PI = 0.5 * float(np.log(2 * np.pi))


def mdn_split(params, z_dim: int, n_mix: int):
    """Split the MDN head's output ``[..., 3·z_dim·n_mix]`` into ``log_pi, mu, log_sigma``,
    each ``[..., z_dim, n_mix]``; ``log_pi`` is normalised over the mixture (log-softmax)."""
    shape = tuple(ops.shape(params)[:-1]) + (z_dim, 3 * n_mix)
    params = ops.reshape(params, shape)
    logits, mu, log_sigma = ops.split(params, 3, axis=-1)
    return ops.log_softmax(logits, axis=-1), mu, ops.clip(log_sigma, -7.0, 5.0)


def mdn_nll(z, log_pi, mu, log_sigma):
    """−log p(z) under a mixture of Gaussians per dimension, per dimension: ``[..., z_dim]``.

    ``p(z_d) = Σ_k π_dk N(z_d; μ_dk, σ_dk²)``, computed as a log-sum-exp for stability.
    """
    z = ops.expand_dims(z, -1)
    log_normal = -0.5 * ops.square((z - mu) / ops.exp(log_sigma)) - log_sigma - LOG_SQRT_2PI
    return -ops.logsumexp(log_pi + log_normal, axis=-1)


def mdn_sample(log_pi, mu, log_sigma, tau: float, seed, noise=None):
    """Draw z from the mixture at temperature ``tau``, as Ha & Schmidhuber do.

    The mixture weights become ``softmax(log π / τ)`` and each Gaussian's standard deviation is
    multiplied by ``√τ``: τ → 0 picks the likeliest component's mean (a deterministic model),
    τ > 1 flattens the choice and widens the noise. ``noise``, if given, is the pair of
    uniform (shape of ``log_pi``) and standard normal (shape of z) draws to use instead of
    fresh ones from ``seed``.
    """
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    if noise is None:
        noise = (keras.random.uniform(ops.shape(log_pi), 1e-9, 1.0, seed=seed),
                 keras.random.normal(ops.shape(log_pi)[:-1], seed=seed))
    uniform, normal = noise
    gumbel = -ops.log(-ops.log(uniform))
    k = ops.argmax(log_pi / tau + gumbel, axis=-1)
    pick = ops.one_hot(k, ops.shape(log_pi)[-1], dtype=mu.dtype)
    mean = ops.sum(mu * pick, axis=-1)
    sigma = ops.sum(ops.exp(log_sigma) * pick, axis=-1)
    return mean + sigma * float(np.sqrt(tau)) * normal


class MDNRNN(keras.Model):
    """M: an LSTM over ``[z_t, a_t]`` that predicts ``z_{t+1}`` (a mixture of ``n_mix`` Gaussians
    per dimension), the reward ``r_t`` and whether the episode ends.

    The means are written as ``z_t`` plus a predicted change, so that an untrained M starts
    close to the forecast "nothing changes" and learns what the actions and the road do to it.

    ``model((z, a))`` returns a dict ``log_pi, mu, log_sigma`` (each ``[B, T, z_dim, n_mix]``),
    ``reward`` and ``done_logit`` (``[B, T]``). ``fit(x=(z, a), y={"z_next", "reward", "done"})``
    minimises the mixture's NLL per latent dimension plus ``reward_weight`` × the reward's
    squared error plus ``done_weight`` × the done flag's cross-entropy. :meth:`step` advances
    the LSTM by one step for a batch (the real agent and the dream use it).
    """

    def __init__(self, z_dim: int = 32, hidden: int = 256, n_mix: int = 5, *,
                 action_dim: int = ACTION_DIM, reward_weight: float = 1.0,
                 done_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.z_dim, self.hidden, self.n_mix = z_dim, hidden, n_mix
        self.action_dim = action_dim
        self.reward_weight, self.done_weight = float(reward_weight), float(done_weight)
        self.lstm = layers.LSTM(hidden, return_sequences=True, return_state=True)
        self.mdn_head = layers.Dense(3 * n_mix * z_dim, name="mdn")
        self.reward_head = layers.Dense(1, name="reward")
        self.done_head = layers.Dense(1, name="done")
        self.trackers = {k: keras.metrics.Mean(name=f"{k}_loss") for k in ("z", "reward", "done")}
        self.build((None, None, z_dim + action_dim))

    def build(self, input_shape):
        self.lstm.build(input_shape)
        for head in (self.mdn_head, self.reward_head, self.done_head):
            head.build((None, None, self.hidden))
        self.built = True

    def _heads(self, h, z):
        log_pi, mu, log_sigma = mdn_split(self.mdn_head(h), self.z_dim, self.n_mix)
        mu = mu + ops.expand_dims(z, -1)          # each mean is z_t plus a predicted change
        return {"log_pi": log_pi, "mu": mu, "log_sigma": log_sigma,
                "reward": self.reward_head(h)[..., 0], "done_logit": self.done_head(h)[..., 0]}

    def call(self, inputs, training=False):
        z, a = inputs
        h, _, _ = self.lstm(ops.concatenate([z, a], axis=-1), training=training)
        return self._heads(h, z)

    def initial_state(self, n: int):
        zeros = ops.zeros((n, self.hidden))
        return [zeros, zeros]

    def step(self, z, a, state):
        """One step for a batch: ``(z_t, a_t, [h, c]) → (heads for t+1, new [h, c])``."""
        h, new_state = self.lstm.cell(ops.concatenate([z, a], axis=-1), state)
        return self._heads(h, z), new_state

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        z_loss = ops.mean(mdn_nll(y["z_next"], y_pred["log_pi"], y_pred["mu"],
                                  y_pred["log_sigma"]))
        reward_loss = ops.mean(ops.square(y_pred["reward"] - y["reward"]))
        done_loss = ops.mean(ops.binary_crossentropy(y["done"], y_pred["done_logit"],
                                                     from_logits=True))
        for key, value in (("z", z_loss), ("reward", reward_loss), ("done", done_loss)):
            self.trackers[key].update_state(value)
        return z_loss + self.reward_weight * reward_loss + self.done_weight * done_loss

    @property
    def metrics(self):
        return [*super().metrics, *self.trackers.values()]


def sequences(z: Sequence[np.ndarray], episodes: Sequence[dict], length: int) -> dict:
    """Cut encoded episodes into training windows for M.

    ``z[i]`` holds the codes of episode ``i``'s frames. Each window of ``length`` transitions
    gives inputs ``z_t, a_t`` and targets ``z_{t+1}``, ``r_t`` and ``done_t`` (the episode ended
    with step t). Returns a dict of arrays with a leading window axis.
    """
    out = {k: [] for k in ("z", "action", "z_next", "reward", "done")}
    for zi, ep in zip(z, episodes):
        t = len(zi) - 1            # transitions with a known next frame
        for s in range(0, t - length + 1, length):
            sl = slice(s, s + length)
            out["z"].append(zi[sl])
            out["action"].append(ep["actions"][sl])
            out["z_next"].append(zi[s + 1:s + length + 1])
            out["reward"].append(ep["rewards"][sl])
            out["done"].append(ep["terminated"][sl].astype(np.float32))
    if not out["z"]:
        raise ValueError(f"no episode has more than {length} transitions")
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def no_change_nll(z: np.ndarray, z_next: np.ndarray, sigma: np.ndarray) -> float:
    """Mean NLL per dimension of ``z_next`` under N(z, σ²): the model that predicts no change."""
    d = (z_next - z) / sigma
    return float(np.mean(0.5 * d ** 2 + np.log(sigma) + LOG_SQRT_2PI))


# --- C: the controller -----------------------------------------------------------------------

def controller_size(z_dim: int, hidden: int) -> int:
    """Parameters of the linear controller: a 3 × (z_dim + hidden) matrix and 3 biases."""
    return (z_dim + hidden) * ACTION_DIM + ACTION_DIM


def controller_actions(params, z, h):
    """Actions of a population of linear controllers, one row of ``params`` per member.

    ``a = tanh(W [z, h] + b)``; then gas = (a₁ + 1)/2 and brake = max(a₂, 0), so that steering
    covers [-1, 1] and gas and brake [0, 1] (the mapping of Ha & Schmidhuber's code).
    """
    x = ops.concatenate([z, h], axis=-1)
    n_in = ops.shape(x)[-1]
    bias = params[:, :ACTION_DIM]
    weight = ops.reshape(params[:, ACTION_DIM:], (-1, n_in, ACTION_DIM))
    a = ops.tanh(ops.einsum("pi,pio->po", x, weight) + bias)
    return ops.stack([a[:, 0], (a[:, 1] + 1.0) / 2.0, ops.maximum(a[:, 2], 0.0)], axis=-1)


class WorldModelAgent:
    """V + M + C in the real environment, for a batch of episodes (:func:`play`'s policy).

    Each step encodes the frames with V (the mean code), picks actions with the controllers
    (row i of ``params`` drives episode i), then feeds (z, action) to M to update its hidden
    state h, the agent's memory.
    """

    def __init__(self, encoder: keras.Model, rnn: MDNRNN, params: np.ndarray):
        self.encoder, self.rnn = encoder, rnn
        self.params = np.asarray(params, np.float32)

    def reset(self, seeds):
        if len(self.params) != len(seeds):
            raise ValueError(f"{len(self.params)} controllers for {len(seeds)} episodes")
        self.state = [np.zeros((len(seeds), self.rnn.hidden), np.float32)] * 2

    def act_on(self, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
        z = self.encoder(frames.astype(np.float32) / 255.0, training=False)[0]
        h = ops.convert_to_tensor(self.state[0])
        actions = controller_actions(ops.convert_to_tensor(self.params), z, h)
        _, state = self.rnn.step(z, actions, [ops.convert_to_tensor(s) for s in self.state])
        self.state = [ops.convert_to_numpy(s) for s in state]
        return ops.convert_to_numpy(actions)[idx]


def dream_returns(rnn: MDNRNN, params: np.ndarray, z0: np.ndarray, steps: int, tau: float,
                  seed: int, *, shared: int | None = None) -> np.ndarray:
    """Total reward of each controller in M's dream, all rollouts at once.

    Row i of ``params`` drives a rollout that starts from code ``z0[i]``; at each step the
    controller acts on (z, h), M predicts the reward, whether the episode ends, and draws the
    next z at temperature ``tau``. A rollout stops collecting reward once M says it has ended.

    With ``shared=R`` the rows come in blocks of R rollouts, one block per controller (row
    ``j·R + r`` is rollout r of controller j), and rollout r of every controller draws the same
    random numbers: *common random numbers*, so that two controllers are compared on the same
    dreams and their difference is not drowned in the dream's noise (give rollout r the same
    ``z0`` in every block too).
    """
    seed_gen = keras.random.SeedGenerator(seed)
    params = ops.convert_to_tensor(np.asarray(params, np.float32))
    z = ops.convert_to_tensor(np.asarray(z0, np.float32))
    n = int(ops.shape(z)[0])
    if shared is not None and (shared < 1 or n % shared):
        raise ValueError(f"{n} rollouts are not blocks of shared={shared}")
    draw_n, blocks = (shared, n // shared) if shared else (n, 1)
    state = rnn.initial_state(n)
    alive = ops.ones((n,))
    total = ops.zeros((n,))
    for _ in range(steps):
        a = controller_actions(params, z, state[0])
        out, state = rnn.step(z, a, state)
        total = total + alive * out["reward"]
        pi_shape = tuple(ops.shape(out["log_pi"])[1:])
        u_end, u_mix, normal = (
            keras.random.uniform((draw_n,), seed=seed_gen),
            keras.random.uniform((draw_n,) + pi_shape, 1e-9, 1.0, seed=seed_gen),
            keras.random.normal((draw_n,) + pi_shape[:-1], seed=seed_gen))
        if blocks > 1:
            u_end = ops.tile(u_end, (blocks,))
            u_mix = ops.tile(u_mix, (blocks, 1, 1))
            normal = ops.tile(normal, (blocks, 1))
        ended = u_end < ops.sigmoid(out["done_logit"])
        alive = alive * (1.0 - ops.cast(ended, "float32"))
        z = mdn_sample(out["log_pi"], out["mu"], out["log_sigma"], tau, None,
                       noise=(u_mix, normal))
    return ops.convert_to_numpy(total)


def dream_frames(rnn: MDNRNN, decoder: keras.Model, params: np.ndarray, z0: np.ndarray,
                 steps: int, tau: float, seed: int) -> np.ndarray:
    """One dream rollout per row of ``params``, decoded by V: uint8 frames ``[N, steps, 64, 64, 3]``."""
    seed_gen = keras.random.SeedGenerator(seed)
    params = ops.convert_to_tensor(np.asarray(params, np.float32))
    z = ops.convert_to_tensor(np.asarray(z0, np.float32))
    state = rnn.initial_state(ops.shape(z)[0])
    frames = []
    for _ in range(steps):
        frames.append(ops.convert_to_numpy(decoder(z, training=False)))
        a = controller_actions(params, z, state[0])
        out, state = rnn.step(z, a, state)
        z = mdn_sample(out["log_pi"], out["mu"], out["log_sigma"], tau, seed_gen)
    return (np.clip(np.stack(frames, axis=1), 0, 1) * 255).round().astype(np.uint8)


# --- CMA-ES ----------------------------------------------------------------------------------

@dataclass
class CMAResult:
    best: np.ndarray          # the parameters with the best fitness seen
    mean: np.ndarray          # the distribution's mean at the end (CMA-ES's own estimate)
    history: dict             # per generation: mean, best and worst fitness of the population
    resumed_from: int         # 0 for a fresh run


def _checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _save_checkpoint(path: Path, state: dict) -> None:
    data = pickle.dumps(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, payload in ((path, data),
                            (path.with_suffix(".sha256"), _checksum(data).encode())):
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, target)


def _load_checkpoint(path: Path) -> dict | None:
    digest = path.with_suffix(".sha256")
    if not path.exists() or not digest.exists():
        return None
    data = path.read_bytes()
    if _checksum(data) != digest.read_text().strip():
        print(f"The CMA-ES checkpoint {path} does not match its checksum; starting afresh.")
        return None
    return pickle.loads(data)  # our own file, checked against the digest written with it


def cma_train(fitness: Callable[[np.ndarray, int], np.ndarray], n_params: int, *,
              generations: int, popsize: int, sigma0: float = 0.1, seed: int = 0,
              checkpoint: Path | None = None, desc: str = "CMA-ES",
              diagonal: bool = False) -> CMAResult:
    """Maximise ``fitness(population, generation) → scores`` with CMA-ES (the ``cma`` library).

    The search starts at zero with step size ``sigma0``. ``diagonal`` learns only a diagonal
    covariance (sep-CMA-ES), which suits many parameters and few generations. With
    ``checkpoint`` the strategy, its history and the state of NumPy's global random generator
    (which ``cma`` samples from) are saved after every generation, with a sha256 of the file
    beside it, so a run that is interrupted and started again continues exactly where it
    stopped; the files are deleted when the run ends.
    """
    import cma

    state = _load_checkpoint(Path(checkpoint)) if checkpoint else None
    if state is not None and (state["n_params"] != n_params or state["popsize"] != popsize):
        print(f"The CMA-ES checkpoint {checkpoint} is for another problem; starting afresh.")
        state = None
    if state is None:
        opts = {"popsize": popsize, "seed": seed + 1, "verbose": -9}
        if diagonal:
            opts["CMA_diagonal"] = True
        es = cma.CMAEvolutionStrategy(np.zeros(n_params), sigma0, opts)
        state = {"es": es, "generation": 0, "history": {"mean": [], "best": [], "worst": []},
                 "best": (-np.inf, np.zeros(n_params)), "n_params": n_params,
                 "popsize": popsize}
    resumed_from = state["generation"]
    if resumed_from and "np_random" in state:
        np.random.set_state(state["np_random"])       # cma draws from NumPy's global generator
    if resumed_from:
        print(f"Resuming {desc} from its checkpoint: generation {resumed_from + 1} of "
              f"{generations}.")
    es = state["es"]
    with Progress(generations - resumed_from, desc, unit="generation") as bar:
        for g in range(resumed_from, generations):
            population = np.asarray(es.ask())
            scores = np.asarray(fitness(population, g), dtype=np.float64)
            es.tell(list(population), list(-scores))        # cma minimises
            state["history"]["mean"].append(float(scores.mean()))
            state["history"]["best"].append(float(scores.max()))
            state["history"]["worst"].append(float(scores.min()))
            if scores.max() > state["best"][0]:
                state["best"] = (float(scores.max()), population[int(scores.argmax())].copy())
            state["generation"] = g + 1
            state["np_random"] = np.random.get_state()
            if checkpoint:
                _save_checkpoint(Path(checkpoint), state)
            bar.update(1)
    if checkpoint:
        for p in (Path(checkpoint), Path(checkpoint).with_suffix(".sha256")):
            p.unlink(missing_ok=True)
    return CMAResult(best=state["best"][1], mean=np.asarray(es.mean), history=state["history"],
                     resumed_from=resumed_from)


# --- animations for the static page ----------------------------------------------------------

def gif_html(frames: np.ndarray, *, fps: int = 25, scale: int = 3, titles: Sequence[str] = (),
             caption: str = "") -> str:
    """An animated GIF of ``frames`` (uint8 ``[T, H, W, 3]``, or several side by side as
    ``[K, T, H, W, 3]``) inline in an ``<img>``: it plays in a notebook and in the static book.

    The GIF keeps the frames' own pixels (a 64×64 frame stays 64×64 in the file) and the page
    enlarges it ``scale`` times without smoothing, which keeps the file small.
    """
    import base64
    import io

    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim == 5:
        gap = np.full(frames.shape[:2] + (frames.shape[2], 2, 3), 255, np.uint8)
        parts = []
        for k in range(frames.shape[0]):
            parts += [frames[k], gap[k]] if k < frames.shape[0] - 1 else [frames[k]]
        frames = np.concatenate(parts, axis=2)
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=int(1000 / fps), loop=0, optimize=True)
    src = base64.b64encode(buf.getvalue()).decode("ascii")
    h, w = frames.shape[1:3]
    head = ""
    if titles:
        cells = "".join(f'<span style="display:inline-block;width:{100 / len(titles):.2f}%;'
                        f'text-align:center">{t}</span>' for t in titles)
        head = f'<div style="width:{w * scale}px;font-size:90%">{cells}</div>'
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (f'<figure style="margin:0">{head}<img width="{w * scale}" height="{h * scale}" '
            f'style="image-rendering:pixelated" alt="{caption or "animation"}" '
            f'src="data:image/gif;base64,{src}"/>{cap}</figure>')
