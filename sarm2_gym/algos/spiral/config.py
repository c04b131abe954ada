"""``SPIRALConfig``: hyper-parameters of SPIRAL, defaulting to the paper's preset (spec §2.2).

Discount conversion. The preset's ``gamma = 0.9995`` is per frame at 30 fps. Our benchmark acts at
10 Hz, three frames per step, so the same discount per second of robot time is

    gamma_10Hz = 0.9995 ** (30 / 10) = 0.9995 ** 3 ~= 0.998501

(effective horizon 1 / (1 - gamma) = 2000 frames = 66.7 s in both cases; over a 10-step chunk
``gamma^H = 0.985``). :func:`convert_discount` does this for any pair of rates.

Network width. The reference MLPs are 3 x 1024 over 6176-d SigLIP features; on two CPU cores one
update with those widths takes ~0.3 s (50 min per 10k-step round), so the default here is
3 x 256 over TinyVLA's 142-d features (~0.05 s per update). :meth:`SPIRALConfig.paper` restores
1024.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Final

from sarm2_gym.algos.common.latents import check_temperature

__all__ = [
    "GAMMA_10HZ",
    "MC_TERMINALS",
    "PAPER_GAMMA",
    "PAPER_GAMMA_FPS",
    "SPIRALConfig",
    "convert_discount",
]

PAPER_GAMMA: Final[float] = 0.9995
PAPER_GAMMA_FPS: Final[float] = 30.0
MC_TERMINALS: Final[tuple[str, ...]] = ("success", "progress", "one")
FROZEN_IMAGE_ENCODERS: Final[tuple[str, ...]] = ("efficientnet_lite0",)


def convert_discount(gamma: float, from_hz: float, to_hz: float) -> float:
    """Per-step discount at ``to_hz`` with the same discount per second as ``gamma`` at ``from_hz``.

    Example:
        >>> round(convert_discount(0.9995, 30, 10), 6)
        0.998501
    """
    if not 0.0 < gamma <= 1.0 or from_hz <= 0 or to_hz <= 0:
        raise ValueError(f"need 0 < gamma <= 1 and positive rates, got {gamma}, {from_hz}, {to_hz}")
    return float(gamma ** (from_hz / to_hz))


GAMMA_10HZ: Final[float] = convert_discount(PAPER_GAMMA, PAPER_GAMMA_FPS, 10.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SPIRALConfig:
    """SPIRAL hyper-parameters (defaults: the ``residual_rl_clean_whiteboard_spiral`` preset).

    Args:
        gamma: Per-control-step discount (0.9995 at 30 fps converted to 10 Hz).
        mc_weight: ``alpha`` of the blended target: 0.5 = SPIRAL, 0 = dense TD only,
            1 = sparse MC only.
        beta_bc: Weight of the residual penalty ``beta * mean(||s_theta||^2)`` (30).
        n_critics: Critic ensemble size ``N_Q`` (5).
        kappa: Latent samples per state in the actor loss and at deployment (4).
        tau: Polyak rate of the target critic (0.005).
        actor_lr: Residual-actor learning rate (1e-4).
        critic_lr: Critic learning rate (1e-4).
        weight_decay: AdamW weight decay (1e-4).
        grad_clip: Global gradient-norm clip (1.0).
        batch_size: Chunk samples per update (16).
        gradient_steps: Updates per round (10,000).
        actor_output_scale: Bound of every residual entry (0.1), in the base policy's normalised
            action units (:meth:`~sarm2_gym.algos.vla.policy.ChunkPolicy.env_actions`).
        actor_hidden: Residual-actor MLP widths.
        critic_hidden: Critic MLP widths (each member).
        rollouts_per_round: Episodes collected per round (the paper: 50-100).
        n_action_steps: Actions executed per chunk before replanning (``None``: the base
            policy's own setting, e.g. ``TinyVLAConfig.n_action_steps``, else the whole chunk,
            which matches the chunk-level critic).
        mc_terminal: ``p_ep`` of the MC return: ``"success"`` (1 for a successful episode, else
            0: the sparse outcome), ``"progress"`` (the labelled last-frame progress, the
            reference's ``use_progress_mc_return``) or ``"one"`` (1 for every episode, the
            reference default for all-successful demonstrations).
        deploy_seed: Seed of the latents used by ``predict(deterministic=True)``.
        latent_temperature: Scale of every latent SPIRAL draws, ``z = T * N(0, I)``: in the
            rollouts, at deployment and in the updates (the actor's kappa latents and the TD
            target's next latent), so the residual is trained on the latents it acts with. 1 is
            the flow head's own noise (the reference); below 1 the base policy samples closer to
            its most typical chunk.
        frozen_image_features: ``None`` (the actor and critics read the base policy's features)
            or ``"efficientnet_lite0"``: each camera's frozen, ImageNet-pretrained
            EfficientNet-Lite0 features are appended to them, as the reference's actor and
            critics read frozen general-purpose vision features
            (:mod:`~sarm2_gym.algos.spiral.features`).
        frozen_image_size: Input side of that encoder (frames are resized to it).
        critic_privileged_state: Asymmetric actor-critic, simulation only: the critics (and so
            best-of-kappa) also read the simulator's object state, the observation's
            ``"env_state"`` (:class:`~sarm2_gym.envs.privileged_state.PrivilegedState`); the
            residual actor does not. A diagnostic of what the critics need to see, not a policy
            for a real robot, whose deployment would have no such state to choose by.
    """

    gamma: float = GAMMA_10HZ
    mc_weight: float = 0.5
    beta_bc: float = 30.0
    n_critics: int = 5
    kappa: int = 4
    tau: float = 0.005
    actor_lr: float = 1e-4
    critic_lr: float = 1e-4
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    batch_size: int = 16
    gradient_steps: int = 10_000
    actor_output_scale: float = 0.1
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    rollouts_per_round: int = 100
    n_action_steps: int | None = None
    mc_terminal: str = "success"
    deploy_seed: int = 0
    latent_temperature: float = 1.0
    frozen_image_features: str | None = None
    frozen_image_size: int = 64
    critic_privileged_state: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 <= self.mc_weight <= 1.0:
            raise ValueError(f"mc_weight must be in [0, 1], got {self.mc_weight}")
        if self.mc_terminal not in MC_TERMINALS:
            raise ValueError(f"mc_terminal must be one of {MC_TERMINALS}, got {self.mc_terminal!r}")
        for name in ("n_critics", "kappa", "batch_size", "rollouts_per_round"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.gradient_steps < 0:
            raise ValueError(f"gradient_steps must be >= 0, got {self.gradient_steps}")
        if not 0.0 < self.tau <= 1.0 or self.actor_output_scale <= 0:
            raise ValueError("tau must be in (0, 1] and actor_output_scale positive")
        check_temperature(self.latent_temperature, "latent_temperature")
        if self.n_action_steps is not None and self.n_action_steps < 1:
            raise ValueError(f"n_action_steps must be >= 1, got {self.n_action_steps}")
        if self.frozen_image_features not in (None, *FROZEN_IMAGE_ENCODERS):
            raise ValueError(
                f"frozen_image_features must be None or one of {FROZEN_IMAGE_ENCODERS}, "
                f"got {self.frozen_image_features!r}"
            )
        if self.frozen_image_size < 32:
            raise ValueError(f"frozen_image_size must be >= 32, got {self.frozen_image_size}")

    @classmethod
    def paper(cls, **overrides: Any) -> SPIRALConfig:
        """The preset with the reference's 3 x 1024 MLPs."""
        return replace(cls(actor_hidden=(1024,) * 3, critic_hidden=(1024,) * 3), **overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SPIRALConfig:
        """Inverse of :meth:`to_dict` (unknown fields are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SPIRALConfig fields {unknown}")
        tuples = {"actor_hidden", "critic_hidden"}
        kwargs: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
        return cls(**kwargs)
