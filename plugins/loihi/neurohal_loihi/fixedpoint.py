"""Loihi's fixed-point formats and the bit-accurate neuron update, as Lava 0.10 defines them.

Facts taken from lava-nc 0.10 (``lava/proc/lif/models.py`` ``AbstractPyLifModelFixed`` and
``PyLifModelBitAcc``; ``lava/proc/dense/models.py`` ``PyDenseModelBitAcc``;
``lava/utils/weightutils.py``) and checked with small Lava runs:

- u and v are 24-bit: u wraps around (modulo 2**24, Lava's own asymmetric rule), v saturates at
  +-(2**23 - 1).
- decays du, dv are 12-bit: ``x * (4096 - d) >> 12`` on the magnitude, sign restored; the
  current decay uses ``du + 1`` (Loihi 1's 1-bit ds_offset), so du = 4095 clears u every step
  and dv = 0 keeps v (a non-leaky IF).
- synaptic input is shifted left by 6 bits into u; the threshold mantissa ``vth`` is compared
  as ``vth << 6``; a neuron spikes when ``v > vth << 6`` and its v is reset to 0.
- bias = ``bias_mant << bias_exp`` (13-bit signed mantissa, 3-bit exponent), added to v.
- Dense: 8-bit weights; with mixed signs Lava keeps only even values in [-256, 254]
  (``truncate_weights`` drops the lowest bit), so weights are stored as ``2 * m`` with m an
  int8; the accumulated sum is shifted by ``weight_exp`` (left if > 0, arithmetic right
  otherwise) and reaches the next layer one timestep later.
"""

from __future__ import annotations

import numpy as np

V_BITS = 24
V_LIMIT = 2 ** (V_BITS - 1) - 1
WRAP = 2 ** (V_BITS - 1)
DECAY_SHIFT = 12
DECAY_UNITY = 2**DECAY_SHIFT
ACT_SHIFT = 6
VTH_SHIFT = 6
VTH_MAX = 2**17 - 1
BIAS_MANT_MAX = 4095
BIAS_EXP_MAX = 7
WEIGHT_EXP_RANGE = (-8, 7)
NEURON_VTH = 2048
"""Threshold mantissa of every neuron layer: the IR threshold becomes ``2048 << 6 = 2**17``,
leaving 6 bits of headroom in the 24-bit membrane and letting the 13-bit bias mantissa with its
exponent reach 4x the threshold per step."""
READOUT_VTH = VTH_MAX
"""A readout is a LIF that must never fire: the largest threshold."""


def decay(x: np.ndarray, d: int) -> np.ndarray:
    """Lava's 12-bit decay of a 24-bit state: sign(x * (4096 - d)) * (|x * (4096 - d)| >> 12)."""
    prod = x.astype(np.int64) * (DECAY_UNITY - d)
    return np.sign(prod) * (np.abs(prod) >> DECAY_SHIFT)


def wrap_current(u: np.ndarray) -> np.ndarray:
    """Lava's 24-bit wrap of the current u (its two-sided rule, reproduced as written)."""
    wrapped = np.where(u > WRAP, u - 2 * WRAP, u)
    return np.where(wrapped <= -WRAP, u + 2 * WRAP, wrapped)


def bias_parts(current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a current in v units into (13-bit mantissa, 3-bit exponent), rounding to nearest.

    The exponent is the smallest that fits the mantissa; a current beyond ``4095 << 7`` is
    clipped there.
    """
    mag = np.abs(current)
    with np.errstate(divide="ignore"):
        need = np.ceil(np.log2(np.maximum(mag, 1e-300) / (BIAS_MANT_MAX + 0.5)))
    exp = np.clip(need, 0, BIAS_EXP_MAX).astype(np.int64)
    mant = np.clip(np.round(current / 2.0**exp), -BIAS_MANT_MAX - 1, BIAS_MANT_MAX)
    return mant.astype(np.int64), exp


def bias_value(mant: np.ndarray, exp: np.ndarray) -> np.ndarray:
    """The bias Lava adds to v each step: mant << exp."""
    return np.left_shift(mant.astype(np.int64), exp.astype(np.int64))


SELF_SYNAPSE_MANT_MAX = 255
"""An inhibitory-only Lava weight matrix keeps magnitudes up to 2**8 - 1 (``clip_weights``)."""
SELF_SYNAPSE_EXP_MAX = 7


def self_synapse(vth: int, dv: int) -> tuple[int, int]:
    """(weight mantissa, weight exponent) of the inhibitory self-synapse of a two-compartment
    soft-reset neuron: ``-mant << exp`` in synaptic units, i.e. ``-(mant << exp) << 6`` in v.

    It should take the threshold ``vth << 6`` off v before the next leak; arriving a step
    later, after the leak, it takes the leaked threshold ``vth * (4096 - dv) / 4096`` (all of
    ``vth`` for an IF), as close as an 8-bit magnitude and a 3-bit exponent allow: exactly
    when that is ``m << e`` with m <= 255 (the neuron layers' 2048 is ``128 << 4``). NxTF
    chooses its subtractive weight the same way (mantissa <= 255, exponent 0..7)."""
    target = round(vth * (DECAY_UNITY - dv) / DECAY_UNITY)
    for exp in range(SELF_SYNAPSE_EXP_MAX + 1):
        if target % (1 << exp) == 0 and target >> exp <= SELF_SYNAPSE_MANT_MAX:
            return target >> exp, exp
    exp = min(SELF_SYNAPSE_EXP_MAX, int(np.ceil(np.log2(target / SELF_SYNAPSE_MANT_MAX))))
    return min(SELF_SYNAPSE_MANT_MAX, round(target / (1 << exp))), exp


def weight_exponent(max_abs: float) -> int:
    """Smallest weight exponent with every weight (in v units) as ``m << (exp + 7)``, |m| <= 127."""
    if max_abs <= 0:
        return 0
    exp = int(np.ceil(np.log2(max_abs / 127.5))) - (ACT_SHIFT + 1)
    return int(np.clip(exp, *WEIGHT_EXP_RANGE))


def weight_mantissa(weight_v: np.ndarray, exp: int) -> np.ndarray:
    """int8 mantissas m of real weights already in v units; Lava's weight is ``2 * m``."""
    return np.clip(np.round(weight_v / 2.0 ** (exp + ACT_SHIFT + 1)), -128, 127).astype(np.int8)
