"""SynthGait's walking body: identities, per-walk jitter and ellipsoid poses.

A person is a set of ellipsoids (head, neck, chest, abdomen, upper and lower
arms, thighs, shanks, feet) moved by a periodic gait.  Body frame: ``x`` points
in the walking direction, ``y`` to the walker's left, ``z`` up; the soles touch
``z = 0``.  Lengths are fractions of the body height unless stated.

:class:`Identity` holds 28 per-person parameters (13 proportions, 15 gait
and posture parameters) plus a bag and a coat.  Population spreads are wide enough that
people overlap in every single parameter; identity lies in the combination.
:func:`jitter_identity` perturbs one person for one walk (speed, amplitudes,
posture, clothing fit).  :func:`pose_ellipsoids` turns a person, a condition
(``nm``, ``bg``, ``cl``) and a time axis into ellipsoid centres and shape
matrices, vectorised over frames.

The gait model is a small textbook one: sinusoidal hip flexion; knee flexion
with a swing-phase peak plus a stance bump (the *bounce*, which lowers the
pelvis while the feet stay on the ground); arm swing in anti-phase with the
legs; pelvis rotation and counter-rotating shoulders; lateral sway; forward
lean.  Left and right differ in amplitude and phase (asymmetry).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["BAG_KINDS", "CONDITIONS", "Identity", "jitter_identity", "pose_ellipsoids", "sample_identity"]

#: Covariate conditions, named as in CASIA-B.
CONDITIONS: tuple[str, ...] = ("nm", "bg", "cl")

#: Bag kinds: a messenger bag at the hip, a backpack, a bag carried in one hand.
BAG_KINDS: tuple[str, ...] = ("shoulder", "backpack", "hand")

_DEG = np.pi / 180.0


@dataclass(frozen=True)
class Identity:
    """One synthetic person. Lengths are fractions of ``height``, angles degrees."""

    # --- proportions -------------------------------------------------------
    height: float  # metres
    leg_length: float  # hip joint to sole
    thigh_share: float  # thigh / (thigh + shank)
    torso_length: float  # hip-joint line to shoulder line
    head_size: float  # head height
    shoulder_width: float
    hip_width: float  # distance between the hip joints
    chest_depth: float
    belly: float  # extra abdomen depth
    limb_girth: float  # multiplier on limb radii
    arm_length: float  # shoulder to fingertips
    foot_length: float
    head_forward: float  # head carried ahead of the shoulders
    # --- gait --------------------------------------------------------------
    cadence: float  # steps per minute
    hip_amplitude: float  # half the hip flexion range (stride)
    hip_offset: float  # mean hip flexion
    knee_amplitude: float  # swing-phase knee flexion
    bounce: float  # stance-phase knee flexion (vertical pelvis excursion)
    arm_swing: float  # shoulder flexion amplitude
    arm_abduction: float  # arms held away from the body
    elbow_flexion: float
    torso_lean: float
    pelvis_rotation: float
    sway: float  # lateral pelvis sway, fraction of height
    asymmetry: float  # relative left/right hip amplitude difference
    arm_asymmetry: float  # relative left/right arm swing difference
    phase_asymmetry: float  # radians between the legs beyond pi
    side_tilt: float  # trunk leaning sideways (one shoulder lower), positive to the left
    # --- covariates --------------------------------------------------------
    bag_kind: str = "shoulder"
    bag_side: int = 1  # +1 left, -1 right
    bag_size: tuple[float, float, float] = (0.17, 0.06, 0.13)  # along x, y, z
    coat_looseness: float = 1.3  # torso widening factor
    coat_sleeve: float = 1.4  # arm thickening factor
    coat_hem: float = 1.0  # hem height in units of the knee height


def _normal(rng: np.random.Generator, mean: float, sd: float, lo: float | None = None, hi: float | None = None) -> float:
    value = float(rng.normal(mean, sd))
    return float(np.clip(value, -np.inf if lo is None else lo, np.inf if hi is None else hi))


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one person from the SynthGait population."""
    n = lambda mean, sd, lo=None, hi=None: _normal(rng, mean, sd, lo, hi)  # noqa: E731
    kind = str(rng.choice(BAG_KINDS, p=(0.4, 0.35, 0.25)))
    if kind == "shoulder":
        bag = (n(0.19, 0.03, 0.12), n(0.065, 0.015, 0.04), n(0.15, 0.03, 0.08))
    elif kind == "backpack":
        bag = (n(0.115, 0.025, 0.06), n(0.18, 0.03, 0.11), n(0.25, 0.04, 0.15))
    else:
        bag = (n(0.21, 0.04, 0.11), n(0.075, 0.02, 0.04), n(0.165, 0.03, 0.09))
    return Identity(
        height=n(1.70, 0.09, 1.45, 1.98),
        leg_length=n(0.50, 0.02, 0.44, 0.56),
        thigh_share=n(0.52, 0.02, 0.46, 0.58),
        torso_length=n(0.30, 0.015, 0.26, 0.34),
        head_size=n(0.13, 0.008, 0.11, 0.15),
        shoulder_width=n(0.235, 0.018, 0.19, 0.29),
        hip_width=n(0.105, 0.012, 0.07, 0.14),
        chest_depth=n(0.13, 0.014, 0.10, 0.17),
        belly=n(0.01, 0.015, -0.01, 0.06),
        limb_girth=n(1.0, 0.11, 0.75, 1.3),
        arm_length=n(0.44, 0.015, 0.40, 0.48),
        foot_length=n(0.15, 0.008, 0.13, 0.17),
        head_forward=n(0.015, 0.012, -0.01, 0.05),
        cadence=n(112.0, 8.0, 90.0, 135.0),
        hip_amplitude=n(21.0, 3.0, 13.0, 29.0),
        hip_offset=n(4.0, 2.0, -1.0, 9.0),
        knee_amplitude=n(55.0, 6.0, 40.0, 70.0),
        bounce=n(12.0, 4.0, 2.0, 22.0),
        arm_swing=n(18.0, 7.0, 3.0, 38.0),
        arm_abduction=n(8.0, 3.0, 2.0, 16.0),
        elbow_flexion=n(18.0, 8.0, 2.0, 45.0),
        torso_lean=n(4.0, 3.0, -3.0, 12.0),
        pelvis_rotation=n(6.0, 2.0, 1.0, 12.0),
        sway=n(0.012, 0.005, 0.0, 0.03),
        asymmetry=n(0.0, 0.1, -0.3, 0.3),
        arm_asymmetry=n(0.0, 0.25, -0.7, 0.7),
        phase_asymmetry=n(0.0, 0.08, -0.25, 0.25),
        side_tilt=n(0.0, 2.5, -7.0, 7.0),
        bag_kind=kind,
        bag_side=int(rng.choice((-1, 1))),
        bag_size=bag,
        coat_looseness=n(1.6, 0.12, 1.3, 1.95),
        coat_sleeve=n(1.7, 0.12, 1.4, 2.05),
        coat_hem=float(rng.uniform(0.55, 1.15)),
    )


#: Per-walk jitter: (field, relative sd) for multiplicative noise, scaled by ``strength``.
_RELATIVE_JITTER: tuple[tuple[str, float], ...] = (
    ("cadence", 0.05),
    ("hip_amplitude", 0.08),
    ("knee_amplitude", 0.07),
    ("bounce", 0.15),
    ("arm_swing", 0.15),
    ("elbow_flexion", 0.15),
    ("pelvis_rotation", 0.15),
    ("sway", 0.15),
    ("chest_depth", 0.03),  # clothes of the day
    ("belly", 0.05),
    ("limb_girth", 0.03),
    ("shoulder_width", 0.02),
)
#: Per-walk jitter: (field, absolute sd) for additive noise, scaled by ``strength``.
_ABSOLUTE_JITTER: tuple[tuple[str, float], ...] = (
    ("hip_offset", 1.0),
    ("torso_lean", 1.2),
    ("arm_abduction", 1.5),
    ("head_forward", 0.005),
    ("asymmetry", 0.02),
    ("phase_asymmetry", 0.02),
    ("side_tilt", 0.5),
)


def jitter_identity(person: Identity, rng: np.random.Generator, strength: float = 1.0) -> Identity:
    """The same person on another walk: gait, posture and clothing fit vary.

    Args:
        strength: multiplies every jitter standard deviation; 0 returns *person*.
    """
    if strength == 0:
        return person
    changes: dict[str, float] = {}
    for name, sd in _RELATIVE_JITTER:
        changes[name] = getattr(person, name) * float(np.exp(rng.normal(0.0, sd * strength)))
    for name, sd in _ABSOLUTE_JITTER:
        changes[name] = getattr(person, name) + float(rng.normal(0.0, sd * strength))
    return dataclasses.replace(person, **changes)


# --------------------------------------------------------------------------
# Geometry helpers (all vectorised over a leading frame axis)
# --------------------------------------------------------------------------


def _rot_z(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _rot_x(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_y(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _limb(start: np.ndarray, end: np.ndarray, radius: float | np.ndarray, overlap: float = 1.15):
    """Spheroid spanning two joints, ``[T, 3]`` each, slightly past both ends.

    The shape matrix of a spheroid with long semi-axis ``a`` along unit ``u``
    and radius ``b`` is ``b^2 I + (a^2 - b^2) u u^T``.
    """
    axis = end - start
    length = np.linalg.norm(axis, axis=-1, keepdims=True)
    u = axis / np.maximum(length, 1e-9)
    a = 0.5 * length[..., 0] * overlap
    b = np.broadcast_to(np.asarray(radius, dtype=np.float64), a.shape)
    a = np.maximum(a, b)
    shape = (b**2)[:, None, None] * np.eye(3) + (a**2 - b**2)[:, None, None] * (u[:, :, None] * u[:, None, :])
    return 0.5 * (start + end), shape


def _box_ellipsoid(centre: np.ndarray, rotation: np.ndarray, semi: tuple[float, float, float] | np.ndarray):
    """Ellipsoid with semi-axes *semi* along the columns of *rotation* ``[T, 3, 3]``."""
    semi = np.asarray(semi, dtype=np.float64)  # [3] or [T, 3]
    scaled = rotation * (semi**2)[..., None, :]
    return centre, scaled @ np.swapaxes(rotation, -1, -2)


def pose_ellipsoids(
    person: Identity, condition: str, times: np.ndarray, phase0: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ellipsoids of *person* walking in *condition* at *times* (seconds).

    Args:
        condition: ``"nm"``, ``"bg"`` or ``"cl"``.
        times: ``[T]`` time stamps.
        phase0: gait phase at ``t = 0`` in radians.

    Returns:
        ``(centres, shapes, clip_z)``: ``[T, P, 3]`` centres in metres (the
        walker advances along ``x``, passing ``x = 0`` mid-clip),
        ``[T, P, 3, 3]`` shape matrices, and ``[T, P]`` heights below which a
        part is cut off (NaN: not cut; used for the coat's hem).
    """
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; expected one of {CONDITIONS}")
    p = person
    H = p.height
    T = len(times)
    phase = 2 * np.pi * (p.cadence / 120.0) * np.asarray(times, dtype=np.float64) + phase0
    coat = condition == "cl"
    bag = condition == "bg"
    hand_bag = bag and p.bag_kind == "hand"

    # ---- legs ---------------------------------------------------------------
    ankle_h = 0.04 * H
    leg = p.leg_length * H - ankle_h
    thigh_len, shank_len = leg * p.thigh_share, leg * (1 - p.thigh_share)
    thigh_r, shank_r = 0.051 * H * p.limb_girth, 0.035 * H * p.limb_girth
    yaw = p.pelvis_rotation * _DEG * np.sin(phase)
    legs = {}
    for side, sign, leg_phase, amp in (
        ("right", -1.0, phase, 1 + p.asymmetry / 2),
        ("left", 1.0, phase + np.pi + p.phase_asymmetry, 1 - p.asymmetry / 2),
    ):
        hip_angle = (p.hip_offset + p.hip_amplitude * amp * np.sin(leg_phase)) * _DEG
        # Phase pi/2 is heel strike (hip flexed); knee flexion peaks in mid swing, at ~73 % of the cycle.
        swing = ((1 + np.cos(leg_phase + 0.15)) / 2) ** 3
        stance = ((1 + np.cos(leg_phase - (np.pi / 2 + 0.9))) / 2) ** 6
        knee = (p.knee_amplitude * amp * swing + p.bounce * stance + 3.0) * _DEG
        hip = np.stack([-np.sin(yaw) * sign * p.hip_width / 2 * H, np.cos(yaw) * sign * p.hip_width / 2 * H, 0 * yaw], -1)
        thigh_dir = np.stack([np.sin(hip_angle), 0 * hip_angle, -np.cos(hip_angle)], -1)
        knee_pos = hip + thigh_len * thigh_dir
        shank_angle = hip_angle - knee
        shank_dir = np.stack([np.sin(shank_angle), 0 * shank_angle, -np.cos(shank_angle)], -1)
        ankle = knee_pos + shank_len * shank_dir
        # Flat on the floor in stance; in swing the foot follows the shank (toes down after toe-off).
        pitch = 0.8 * shank_angle * np.clip(1.6 * swing, 0.0, 1.0)
        foot_dir = np.stack([np.cos(pitch), sign * np.sin(8 * _DEG) + 0 * pitch, np.sin(pitch)], -1)
        foot_dir /= np.linalg.norm(foot_dir, axis=-1, keepdims=True)
        legs[side] = dict(hip=hip, knee=knee_pos, ankle=ankle, foot_dir=foot_dir)

    # Lift the body so that the lower foot stands on the ground.
    sole = np.minimum(legs["right"]["ankle"][:, 2], legs["left"]["ankle"][:, 2]) - ankle_h
    lift = np.stack([0 * sole, 0 * sole, -sole], -1)
    sway = np.stack([0 * sole, p.sway * H * np.cos(phase), 0 * sole], -1)
    for leg_parts in legs.values():
        for key in ("hip", "knee", "ankle"):
            leg_parts[key] = leg_parts[key] + lift
    pelvis = lift + 0.6 * sway

    parts: list[tuple[np.ndarray, np.ndarray]] = []
    clips: list[float | np.ndarray] = []

    def add(part: tuple[np.ndarray, np.ndarray], clip: float | np.ndarray = np.nan) -> None:
        parts.append(part)
        clips.append(clip)

    for side in ("right", "left"):
        lg = legs[side]
        add(_limb(lg["hip"], lg["knee"], thigh_r, overlap=1.2))
        add(_limb(lg["knee"], lg["ankle"], shank_r))
        foot_centre = lg["ankle"] + 0.3 * p.foot_length * H * lg["foot_dir"] - np.array([0, 0, 0.45 * ankle_h])
        lateral = np.cross(np.array([0.0, 0.0, 1.0]), lg["foot_dir"])
        lateral /= np.linalg.norm(lateral, axis=-1, keepdims=True)
        foot_rot = np.stack([lg["foot_dir"], lateral, np.cross(lg["foot_dir"], lateral)], -1)  # orthonormal frame
        add(_box_ellipsoid(foot_centre, foot_rot, (0.5 * p.foot_length * H, 0.026 * H, 0.026 * H)))

    # ---- trunk --------------------------------------------------------------
    # A backpack pulls the trunk forward.
    extra_lean = 4.0 if bag and p.bag_kind == "backpack" else 0.0
    lean = (p.torso_lean + extra_lean + 1.0 * np.cos(2 * phase)) * _DEG
    torso_rot = _rot_z(-0.6 * yaw) @ _rot_y(lean) @ _rot_x(np.full_like(lean, -p.side_tilt * _DEG))
    pelvis_rot = _rot_z(yaw) @ _rot_y(lean)
    up = torso_rot[:, :, 2]
    forward = torso_rot[:, :, 0]
    torso_len = p.torso_length * H
    upper = pelvis + sway
    shoulder_centre = upper + torso_len * up
    loose = p.coat_looseness if coat else 1.0
    # A coat also pads the shoulders: its upper body reaches a little higher.
    chest_semi = (0.5 * p.chest_depth * H * loose, 0.46 * p.shoulder_width * H * loose, (0.46 + 0.05 * coat) * torso_len)
    add(_box_ellipsoid(upper + (0.6 + 0.03 * coat) * torso_len * up, torso_rot, chest_semi))
    abdomen_depth = 0.5 * (p.chest_depth + p.belly) * H
    abdomen_width = 0.5 * p.hip_width * H + 0.85 * thigh_r
    add(_box_ellipsoid(pelvis + 0.2 * torso_len * up, pelvis_rot, (abdomen_depth * loose, abdomen_width * loose, 0.4 * torso_len)))

    neck_top = shoulder_centre + 0.06 * H * up + np.array([p.head_forward * H * 0.5, 0, 0])
    add(_limb(shoulder_centre - 0.02 * H * up, neck_top, 0.032 * H * (1.6 if coat else 1.0)))  # coat collar
    head_centre = neck_top + np.array([p.head_forward * H * 0.5, 0, 0]) + 0.45 * p.head_size * H * up
    add(_box_ellipsoid(head_centre, torso_rot, (0.46 * p.head_size * H, 0.39 * p.head_size * H, 0.5 * p.head_size * H)))

    # ---- arms ---------------------------------------------------------------
    upper_len, fore_len = 0.42 * p.arm_length * H, 0.58 * p.arm_length * H
    sleeve = p.coat_sleeve if coat else 1.0
    hands = {}
    for side, sign, arm_phase, amp in (
        ("right", -1.0, phase + np.pi, 1 + p.arm_asymmetry / 2),
        ("left", 1.0, phase, 1 - p.arm_asymmetry / 2),
    ):
        carrying = hand_bag and sign == p.bag_side
        # A carried bag stills its arm; a strap steadies the bag-side arm; a heavy coat damps both.
        damping = 0.3 if carrying else (0.6 if bag and p.bag_kind == "shoulder" and sign == p.bag_side else 1.0)
        swing_amp = p.arm_swing * amp * damping * (0.75 if coat else 1.0)
        elbow = (2.0 if carrying else p.elbow_flexion) * _DEG
        shoulder = shoulder_centre + (torso_rot @ np.array([0.0, sign * 0.42 * p.shoulder_width * H, -0.03 * H]))
        flex = (swing_amp * np.sin(arm_phase)) * _DEG
        abd = (p.arm_abduction * (1.5 if coat else 1.0)) * _DEG
        upper_dir = np.stack([np.sin(flex) * np.cos(abd), sign * np.sin(abd) + 0 * flex, -np.cos(flex) * np.cos(abd)], -1)
        elbow_pos = shoulder + upper_len * upper_dir
        fore = flex + elbow * (1.0 + 0.5 * np.sin(arm_phase))
        fore_dir = np.stack([np.sin(fore) * np.cos(abd), sign * np.sin(abd) + 0 * fore, -np.cos(fore) * np.cos(abd)], -1)
        hand = elbow_pos + fore_len * fore_dir
        hands[side] = hand
        add(_limb(shoulder, elbow_pos, 0.028 * H * p.limb_girth * sleeve, overlap=1.2))
        add(_limb(elbow_pos, hand, 0.022 * H * p.limb_girth * (0.5 + 0.5 * sleeve)))

    # ---- covariates ---------------------------------------------------------
    if condition == "bg":
        bw, bd, bh = (s * H for s in p.bag_size)
        side_name = "left" if p.bag_side > 0 else "right"
        ident = np.broadcast_to(np.eye(3), (T, 3, 3))
        if p.bag_kind == "shoulder":
            offset = np.array([0.0, p.bag_side * (abdomen_width + 0.5 * bd), -0.04 * H])
            centre = pelvis + (pelvis_rot @ offset) + np.stack([0.02 * H * np.sin(phase), 0 * phase, 0 * phase], -1)
            add(_box_ellipsoid(centre, ident, (0.5 * bw, 0.5 * bd, 0.5 * bh)))
            strap_from = shoulder_centre + (torso_rot @ np.array([0.0, -p.bag_side * 0.3 * p.shoulder_width * H, 0.0]))
            add(_limb(strap_from, centre + np.array([0, 0, 0.4 * bh]), 0.01 * H, overlap=1.0))
        elif p.bag_kind == "backpack":
            centre = upper + 0.6 * torso_len * up - (0.5 * p.chest_depth * H + 0.5 * bw) * forward
            add(_box_ellipsoid(centre, torso_rot, (0.5 * bw, 0.5 * bd, 0.5 * bh)))
        else:
            centre = hands[side_name] + np.array([0.0, 0.0, -0.45 * bh])
            add(_box_ellipsoid(centre, ident, (0.5 * bw, 0.5 * bd, 0.5 * bh)))

    if coat:
        knee_height = shank_len + ankle_h
        hem = np.full(T, p.coat_hem * knee_height)
        waist = pelvis[:, 2] + 0.3 * torso_len
        knees_x = 0.5 * (legs["right"]["knee"][:, 0] + legs["left"]["knee"][:, 0])
        spread = 0.5 * np.abs(legs["right"]["knee"][:, 0] - legs["left"]["knee"][:, 0])
        centre = np.stack([0.5 * (pelvis[:, 0] + knees_x), 0 * hem, hem], -1)
        semi = np.stack(
            [
                np.maximum(abdomen_depth * loose, 0.9 * spread + 1.1 * thigh_r),
                np.full(T, abdomen_width * loose * 1.05),
                np.maximum(waist - hem, 0.05 * H),
            ],
            -1,
        )
        add(_box_ellipsoid(centre, np.broadcast_to(np.eye(3), (T, 3, 3)), semi), clip=hem)

    # Walk forward at the speed the stride implies, passing x = 0 mid-clip.
    step = 2.0 * leg * np.sin(p.hip_amplitude * _DEG)
    speed = step * p.cadence / 60.0
    travel = speed * (np.asarray(times, dtype=np.float64) - float(np.mean(times)))
    centres = np.stack([c for c, _ in parts], axis=1)
    centres[..., 0] += travel[:, None]
    shapes = np.stack([s for _, s in parts], axis=1)
    clip_z = np.stack([np.broadcast_to(np.asarray(c, dtype=np.float64), (T,)) for c in clips], axis=1)
    return centres, shapes, clip_z
