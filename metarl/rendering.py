"""Videos of a meta-policy adapting to one task: one deterministic episode after each inner step.

    from metarl.rendering import render_adaptation
    info = render_adaptation("runs/hcv", {"velocity": 1.5}, [0, 1, 3], Path("hcv.mp4"), size=(320, 240))
    info["returns"]  # {0: -80.1, 1: -45.3, 3: -30.2}

The policy is adapted with the same inner loop as :func:`metarl.evaluation.protocol.adaptation_returns`
(``episodes`` sampled episodes per step); for each requested step k, one episode is then rolled out
with the mean action of the policy after k steps and rendered, with a caption giving the family, the
task, the step k, the control step t and the running return; AntGoal's goal stands on the floor as a
green post. ``layout="sequence"`` plays the episodes one after another, ``"side"`` plays them at the
same time side by side.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

import envs
from metarl import learners
from metarl.checks import check_int, check_seed
from metarl.evaluation.protocol import adaptation_returns, load_meta_policy
from metarl.files import atomic_write
from metarl.policy_spec import PolicySpec
from policies import gaussian

FORMATS = (".mp4", ".gif")
LAYOUTS = ("sequence", "side")
MIN_SIZE, MAX_SIZE = 16, 4096


def check_size(size) -> tuple[int, int]:
    """``size`` as ``(width, height)`` ints in [16, 4096], or a ValueError."""
    try:
        w, h = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height), got {size!r}") from None
    for name, v in (("width", w), ("height", h)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or not MIN_SIZE <= v <= MAX_SIZE:
            raise ValueError(f"frame {name} must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {v!r}")
    return int(w), int(h)


def check_steps(steps) -> list[int]:
    """``steps`` sorted and without repeats; a ValueError if empty or not all integers >= 0."""
    try:
        values = list(steps)
    except TypeError:
        raise ValueError(f"steps must be a list of integers >= 0, got {steps!r}") from None
    if not values:
        raise ValueError("give at least one inner step to render (e.g. 0,1)")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            raise ValueError(f"inner steps must be integers >= 0, got {v!r}")
    return sorted({int(v) for v in values})


TEMP_EXTRA = len(".") + len(".XXXXXXXX")  # metarl.files.atomic_write's temporary file: .<stem>.XXXXXXXX<suffix>


def check_out(out: str | os.PathLike) -> Path:
    """``out`` as a Path ending in .mp4 or .gif whose directory exists, or can be made, and is writable; nothing
    is written or made here (:func:`make_out_dir` makes the directory when the video is ready)."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"--out {str(out)!r} must end in .mp4 or .gif, not {out.suffix or 'no extension'!r}")
    try:
        existing = out.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise ValueError(f"--out {str(out)!r}: {str(existing)!r} is a file, not a directory; give a path in a "
                             "directory")
        try:
            name_max = os.pathconf(existing, "PC_NAME_MAX")
        except (OSError, ValueError):
            name_max = 255
        length = len(os.fsencode(out.name))
        if length + TEMP_EXTRA > name_max:
            short = out.name[:20] + "..." + out.name[-10:]
            raise ValueError(f"--out file name {short!r} is too long: {length} bytes, at most {name_max - TEMP_EXTRA} "
                             f"fit ({name_max} in this file system, less {TEMP_EXTRA} for the temporary file written "
                             "beside it); give a shorter name")
        if out.is_dir():
            raise ValueError(f"--out {str(out)!r} is a directory; give a file name ending in .mp4 or .gif")
        if existing == out.parent:
            with tempfile.TemporaryFile(dir=existing):
                pass
        elif not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:
        raise ValueError(f"--out {str(out)!r}: cannot write there ({e.strerror or e}); give another path") from None
    return out


def remove_stale_temporaries(out: Path) -> None:
    """Remove the hidden partial files (``.<stem>.*<suffix>``) an earlier render of ``out`` left beside it when it
    was killed mid-write: this render replaces them."""
    from metarl import files

    files.remove_stale_temporaries(out.parent, (out.name,))


def make_out_dir(out: Path) -> None:
    """Make the directory of ``out`` (checked by :func:`check_out`) when the video is ready to be written."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {str(out)!r}: cannot make its directory ({e.strerror or e})") from None


def format_task(task: dict) -> str:
    """``velocity=1.50``, ``goal=[1.00, -2.00]``; arrays of more than 3 values as their size and mean."""
    parts = []
    for key, value in task.items():
        if isinstance(value, int | np.integer) and not isinstance(value, bool):  # a joint or leg index
            parts.append(f"{key}={int(value)}")
            continue
        v = np.asarray(value, dtype=np.float64)
        if v.ndim == 0:
            parts.append(f"{key}={float(v):.2f}")
        elif v.size <= 3:
            parts.append(f"{key}=[{', '.join(f'{x:.2f}' for x in v.ravel())}]")
        else:
            parts.append(f"{key}=[{v.size} values, mean {v.mean():.2f}]")
    return " ".join(parts)


class _Captioner:
    """Draws the caption (two lines of white text on a darkened band at the top) on frames."""

    def __init__(self, width: int, height: int):
        from PIL import ImageFont

        size = max(8, round(height / 22))
        try:
            self.font = ImageFont.load_default(size=size)
        except (TypeError, ValueError, OSError):  # Pillow without FreeType: the fixed bitmap font
            self.font = ImageFont.load_default()
        try:
            ascent, descent = self.font.getmetrics()
            self.line = ascent + descent
        except AttributeError:
            self.line = 11
        self.pad = max(2, self.line // 5)
        self.band = min(height, 2 * self.line + 3 * self.pad)

    def __call__(self, frame: np.ndarray, lines: list[str]) -> np.ndarray:
        from PIL import Image, ImageDraw

        frame = frame.copy()
        frame[: self.band] //= 3
        img = Image.fromarray(frame)
        draw = ImageDraw.Draw(img)
        for i, text in enumerate(lines):
            draw.text((self.pad, self.pad + i * (self.line + self.pad)), text, fill=(255, 255, 255), font=self.font)
        return np.asarray(img)


class _Episode:
    """One deterministic episode of the policy ``params`` (task axis 1) on its own one-env engine."""

    def __init__(self, spec: PolicySpec, task: dict, params: dict, step: int, horizon: int | None, seed: int,
                 size: tuple[int, int], caption: _Captioner, task_text: str):
        self.spec, self.params, self.step, self.seed = spec, params, step, seed
        self.size, self.caption, self.task_text = size, caption, task_text
        self.env = envs.make(spec.family, 1, tasks=[task], horizon=horizon, nthread=1, **spec.family_options)
        self.ret, self.length = 0.0, 0

    def _frame(self) -> np.ndarray:
        frame = self.env.render_frame(0, *self.size)
        lines = [f"step {self.step}  t={self.length}  return {self.ret:.2f}", f"{self.spec.family}  {self.task_text}"]
        return self.caption(frame, lines)

    def frames(self) -> Iterator[np.ndarray]:
        """The frame after reset, then one after every control step until the episode ends."""
        obs, _ = self.env.reset(seed=self.seed)
        yield self._frame()
        for _ in range(self.env.horizon):
            with torch.no_grad():
                mean, _ = gaussian.forward(self.params, torch.as_tensor(obs, dtype=torch.float32),
                                           self.spec.activation)
            actions = self.spec.action_scale * mean.double().numpy()
            if self.spec.clip_actions:  # a policy trained so (stable-baselines3) acts so
                actions = np.clip(actions, self.env.single_action_space.low, self.env.single_action_space.high)
            obs, reward, terminated, truncated, _ = self.env.step(actions)
            self.ret += float(reward[0])
            self.length += 1
            yield self._frame()
            if terminated[0] or truncated[0]:
                break


def _side_by_side(episodes: list[_Episode]) -> Iterator[np.ndarray]:
    """Frames of all episodes concatenated horizontally; an ended episode keeps its last frame."""
    iters = [e.frames() for e in episodes]
    last: list[np.ndarray | None] = [None] * len(iters)
    while True:
        fresh = False
        for i, it in enumerate(iters):
            frame = next(it, None)
            if frame is not None:
                last[i], fresh = frame, True
        if not fresh:
            return
        yield np.concatenate(last, axis=1)


class _Writer:
    """Appends frames to ``path`` (mp4 through imageio-ffmpeg, gif through Pillow)."""

    def __init__(self, path: str, kind: str, fps: int):
        import imageio

        self.path, self.kind, self.fps, self.count = path, kind, fps, 0
        if kind == ".mp4":
            self._writer = imageio.get_writer(
                path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p", quality=8,
                macro_block_size=1, ffmpeg_log_level="error",
            )
        else:
            self._frames: list[np.ndarray] = []

    def append(self, frame: np.ndarray) -> None:
        if self.kind == ".mp4":
            h, w = frame.shape[:2]  # yuv420p needs even sizes: repeat the last row / column
            if h % 2 or w % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            self._writer.append_data(frame)
        else:
            self._frames.append(frame)
        self.count += 1

    def close(self) -> None:
        if self.kind == ".mp4":
            self._writer.close()
            return
        import imageio.v3 as iio

        # GIF delays are in hundredths of a second and viewers slow down delays under 20 ms
        duration = max(20, round(1000 / self.fps / 10) * 10)
        iio.imwrite(self.path, np.stack(self._frames), plugin="pillow", extension=".gif", duration=duration,
                    loop=0)


def render_adaptation(path: str | os.PathLike, task: dict, steps: list[int], out: str | os.PathLike,
                      size: tuple[int, int] = (480, 320), episodes: int | None = None, seed: int = 0,
                      horizon: int | None = None, layout: str = "sequence", progress: bool = True,
                      family: str | None = None) -> dict:
    """Render the meta-policy at ``path`` after each of ``steps`` inner steps on ``task`` into ``out``.

    Args:
        path: a run directory or a ``policy.pt``.
        task: a task of the policy's family, e.g. ``{"velocity": 1.5}``.
        steps: inner steps to show (sorted, repeats dropped), e.g. ``[0, 1, 3]``.
        out: the video, ``.mp4`` (H.264 at the env's frame rate) or ``.gif``; written atomically.
        size: ``(width, height)`` of one episode's frames.
        episodes: episodes sampled per inner step to adapt the policy (default: its training
            ``episodes_per_task``; the advantages use its training gamma and GAE lambda).
        seed: seeds the adaptation's sampler and the initial state of every rendered episode.
        horizon: episode length (default: the policy's training horizon, else the family's).
        layout: ``"sequence"`` (episodes one after another) or ``"side"`` (side by side, same time).
        progress: show a progress bar over frames.
        family: if given, refuse a policy of another family.

    Returns:
        ``{"out": str, "frames": n, "returns": {k: float}, "episode_lengths": {k: int}, "fps": int,
        "sampled_returns": {k: float}, "episodes": E}``; ``sampled_returns`` is the mean return of the E
        stochastic episodes of step k.

    Raises:
        ValueError: a bad argument (missing policy, a task of the wrong keys or range, a bad extension,
            an unwritable directory, a family without a MuJoCo body, ...), before anything is run or
            written.
    """
    from tqdm import tqdm

    # every check before any work
    out = check_out(out)
    steps = check_steps(steps)
    size = check_size(size)
    if episodes is not None:
        episodes = check_int("episodes", episodes)
    if horizon is not None:
        horizon = check_int("horizon", horizon)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    check_seed(seed)
    params, spec = load_meta_policy(path, family)
    if not envs.get_family(spec.family).mujoco:
        raise ValueError(f"rendering needs a MuJoCo family; {str(path)!r} is a {spec.family} policy")
    if not isinstance(task, dict) or not task:
        raise ValueError(f"give a task of {spec.family} (e.g. --task key=value), got {task!r}")
    envs.validate_task(spec.family, task, **spec.family_options)
    task = dict(task)
    remove_stale_temporaries(out)  # every check passed
    horizon = horizon if horizon is not None else spec.horizon
    episodes = spec.episodes_per_task if episodes is None else episodes

    sampled, params_per_step = adaptation_returns(params, spec, [task], max(steps), episodes, int(seed), horizon,
                                                  gamma=spec.gamma, gae_lambda=spec.gae_lambda)
    caption = _Captioner(*size)
    task_text = format_task(task)
    runs = [_Episode(spec, task, params_per_step[k], k, horizon, int(seed), size, caption, task_text) for k in steps]
    fps = int(runs[0].env.metadata["render_fps"])
    per_episode = runs[0].env.horizon + 1
    if layout == "sequence":
        frames = (f for run in runs for f in run.frames())
        expected = per_episode * len(runs)
    else:
        frames = _side_by_side(runs)
        expected = per_episode

    written = []

    def write(tmp):
        writer = _Writer(str(tmp), out.suffix.lower(), fps)
        written.append(writer)
        with tqdm(total=expected, unit="frame", desc=f"render {out.name}", disable=not progress) as bar:
            try:
                for frame in frames:
                    writer.append(frame)
                    bar.update()
            finally:
                writer.close()
            bar.total = bar.n
            bar.refresh()

    make_out_dir(out)
    atomic_write(out, write)
    writer = written[0]
    return {
        "out": str(out),
        "frames": writer.count,
        "returns": {k: run.ret for k, run in zip(steps, runs, strict=True)},
        "episode_lengths": {k: run.length for k, run in zip(steps, runs, strict=True)},
        "fps": fps,
        "sampled_returns": {k: float(sampled[k, 0]) for k in steps}, "episodes": episodes,
    }


def _check_episode_tasks(family: str, options: dict, task: dict, horizon: int, switch_at: int | None,
                         switch_task: dict | None) -> None:
    """ValueError unless ``task`` is one of ``family``'s and ``--switch-at`` / ``--switch-task`` are both absent or
    a step inside the episode and another task of the family."""
    envs.validate_task(family, task, **options)
    if (switch_at is None) != (switch_task is None):
        raise ValueError("give --switch-at and --switch-task together")
    if switch_at is not None:
        if isinstance(switch_at, bool) or not isinstance(switch_at, int) or not 1 <= switch_at < horizon:
            raise ValueError(f"--switch-at must be an integer in [1, {horizon - 1}], got {switch_at!r}")
        envs.validate_task(family, switch_task, **options)


def _write_frames(out: Path, frames: list[np.ndarray], fps: int) -> None:
    """``frames`` as the video ``out`` (mp4 or gif by its suffix), written atomically."""
    def write(tmp):
        writer = _Writer(str(tmp), out.suffix.lower(), fps)
        try:
            for frame in frames:
                writer.append(frame)
        finally:
            writer.close()

    make_out_dir(out)
    atomic_write(out, write)


def render_controller(run: str | os.PathLike, task: dict, out: str | os.PathLike, size: tuple[int, int] = (480, 320),
                      seed: int = 0, horizon: int | None = None, switch_at: int | None = None,
                      switch_task: dict | None = None, adapt: bool = True, progress: bool = True) -> dict:
    """Video of a model-based run's controller on ``task`` (its model adapted online unless ``adapt`` is
    False), optionally switching to ``switch_task`` after ``switch_at`` steps; broken joints are drawn red.

    Returns:
        ``{"out", "frames", "return", "length", "fps"}``.

    Raises:
        ValueError: bad arguments, before anything runs or is written.
    """
    from tqdm import tqdm

    from metarl.evaluation.model_based import load_model_run
    from metarl.learners.model_based.grbal import run_controller
    from metarl.learners.model_based.learner import planner_options

    out = check_out(out)
    size = check_size(size)
    check_seed(seed)
    params, stats, cfg, _ = load_model_run(run)
    default_horizon = cfg.horizon or envs.get_family(cfg.family).horizon
    horizon = default_horizon if horizon is None else check_int("horizon", horizon)
    _check_episode_tasks(cfg.family, cfg.family_options, task, horizon, switch_at, switch_task)
    remove_stale_temporaries(out)  # every check passed
    caption = _Captioner(*size)
    frames, total, fps = [], [0.0], []
    name = cfg.algo if adapt else f"{cfg.algo}, not adapted"
    bar = tqdm(total=horizon + 1, unit="frame", desc=f"render {out.name}", disable=not progress)

    def grab(env, t, reward):
        total[0] += float(reward[0])
        fps[:] = [int(env.metadata["render_fps"])]
        note = "" if switch_at is None else (f"  switches after {switch_at}" if t <= switch_at else "  switched")
        lines = [f"{name}  t={t}  return {total[0]:.2f}{note}", f"{cfg.family}  {format_task(env.tasks[0])}"]
        frames.append(caption(env.render_frame(0, *size), lines))
        bar.update()

    try:
        ep = run_controller(cfg.family, [dict(task)], params, stats, horizon=horizon, past=cfg.past_steps,
                            inner_lr=cfg.inner_lr if adapt and learners.get(cfg.algo).meta else 0.0,
                            planner=planner_options(cfg), seed=seed,
                            switch=None if switch_at is None else (switch_at, [dict(switch_task)]),
                            family_options=cfg.family_options, nthread=1, on_step=grab)
    finally:
        bar.close()

    _write_frames(out, frames, fps[0])
    return {"out": str(out), "frames": len(frames), "return": float(ep["returns"][0]),
            "length": int(ep["valid"][0].sum()), "fps": fps[0]}


def render_memory(run: str | os.PathLike, task: dict, out: str | os.PathLike, size: tuple[int, int] = (480, 320),
                  seed: int = 0, horizon: int | None = None, switch_at: int | None = None,
                  switch_task: dict | None = None, family: str | None = None, progress: bool = True) -> dict:
    """Video of a memory-based run (rl2, rma) acting on ``task`` with its policy's mean: one trial, its memory
    kept across the trial's episodes, optionally switching to ``switch_task`` after ``switch_at`` steps of
    each episode with no reset (a joint or leg failing mid-episode, drawn red).

    Returns:
        ``{"out", "frames", "returns" (one per episode), "lengths", "rewards" (per episode, per step), "fps"}``.

    Raises:
        ValueError: bad arguments, before anything runs or is written.
    """
    from tqdm import tqdm

    from metarl.evaluation.memory import load_memory_policy

    out = check_out(out)
    size = check_size(size)
    check_seed(seed)
    policy, meta = load_memory_policy(run)
    name, fam, options = meta["learner"], meta["family"], meta["family_options"]
    if not meta.get("adaptation_trained", True):  # an rma run's policy.pt written in its teacher phase
        raise ValueError(f"{str(run)!r} stopped in its teacher phase (iteration {meta['iteration']}): its adaptation "
                         "module is untrained; resume the run (metarl train --resume) before filming it")
    if family is not None and family != fam:
        raise ValueError(f"--family {family}: {str(run)!r} was trained on {fam}")
    default_horizon = meta["horizon"] or envs.get_family(fam).horizon
    horizon = default_horizon if horizon is None else check_int("horizon", horizon)
    _check_episode_tasks(fam, options, task, horizon, switch_at, switch_task)
    remove_stale_temporaries(out)  # every check passed
    env = envs.make(fam, 1, tasks=[dict(task)], horizon=horizon, nthread=1, **options)
    if switch_at is not None:
        env.schedule_switch(switch_at, [dict(switch_task)])
    fps = int(env.metadata["render_fps"])
    caption = _Captioner(*size)
    K = meta["episodes_per_trial"]
    low, high = env.single_action_space.low, env.single_action_space.high
    frames, returns, lengths, rewards = [], [], [], []
    state, last_reward = policy.initial_state(1), torch.zeros(1)
    bar = tqdm(total=K * (horizon + 1), unit="frame", desc=f"render {out.name}", disable=not progress)

    def grab(k, t, total):
        note = "" if switch_at is None else (f"  switches after {switch_at}" if t <= switch_at else "  switched")
        lines = [f"{name}  episode {k + 1}/{K}  t={t}  return {total:.2f}{note}", f"{fam}  {format_task(env.tasks[0])}"]
        frames.append(caption(env.render_frame(0, *size), lines))
        bar.update()

    try:
        for k in range(K):
            obs, _ = env.reset(seed=[[seed, k]])
            total, t = 0.0, 0
            rewards.append([])
            grab(k, t, total)
            for t in range(1, horizon + 1):
                with torch.no_grad():
                    action, state = policy.act(torch.as_tensor(obs, dtype=torch.float32), state, last_reward,
                                               torch.tensor([t == 1]), deterministic=True)
                env_action = action.double().numpy() * meta["action_scale"]
                if meta["clip_actions"]:
                    env_action = np.clip(env_action, low, high)
                obs, reward, terminated, truncated, _ = env.step(env_action)
                last_reward = torch.as_tensor(reward, dtype=torch.float32)
                total += float(reward[0])
                rewards[-1].append(float(reward[0]))
                grab(k, t, total)
                if terminated[0] or truncated[0]:
                    break
            returns.append(total)
            lengths.append(t)
    finally:
        bar.close()

    _write_frames(out, frames, fps)
    return {"out": str(out), "frames": len(frames), "returns": returns, "lengths": lengths, "rewards": rewards,
            "fps": fps}
