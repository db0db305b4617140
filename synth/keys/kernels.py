"""Compiled per-pixel shading kernel (Numba): the whole Blinn-Phong + environment + surface-mark
model of :func:`synth.keys.render.shade_relief` in ONE pass over an object's pixels.

Why compiled: profiling at 64-512 px showed the renderer's cost was dominated by the fixed
per-call overhead of ~50 small NumPy operations per shaded object (0.3-0.5 ms per object, 4-6
objects per sample), not by arithmetic. The kernel does the same model per pixel in registers
(~0.02 ms for a 5,000-pixel key). The maths is that of ``synth.keys.shading.shade_surface`` (kept
as the documented NumPy reference and tested against this kernel).

Per-pixel inputs are 16-bit fixed point (``value = int16 code * scale``, one scale per kind of
input: :data:`Q_UNIT`, :data:`Q_TEXTURE`, :data:`Q_CAVITY`), the form a cached
:class:`~synth.keys.render.Relief` stores (:func:`quantize`). Decoding is one multiply; float16
storage would need a 256 KB lookup table whose cache misses make the kernel ~1.5x slower on the
small, scattered objects of a scene, and fixed point is also the more precise of the two for
normals (3e-5 against float16's 5e-4 near 1). An absent optional array is a length-0 array.
"""

from __future__ import annotations

import math

import numpy as np

from ..compiled import kernel

__all__ = ["Q_UNIT", "Q_TEXTURE", "Q_CAVITY", "quantize", "dequantize", "shade_pixels", "PARAMS", "params_vector",
           "pack_params"]

#: fixed-point scales (value per int16 code): unit-range inputs (normal components, scratch
#: coverage, top-face ratio, plastic weight), the zero-mean unit-std brushing / tarnish textures
#: (clipped to +-8) and the cavity depth (px, clipped to [0, 64]).
Q_UNIT = 1.0 / 32767.0
Q_TEXTURE = 8.0 / 32767.0
Q_CAVITY = 64.0 / 32767.0

#: names of the scalar parameters, in the order of the kernel's ``prm`` vector.
PARAMS = (
    "r00", "r01", "r10", "r11",  # rotation applied to the normals' (x, y)
    "lx", "ly", "lz", "hx", "hy", "hz",  # unit light and Blinn half vector (orthographic viewer)
    "env_cx", "env_cy", "env_gain", "ambient", "brightness",
    "metal", "m_r", "m_g", "m_b", "m_streak", "m_wear", "rust_r", "rust_g", "rust_b",
    "m_diffuse", "m_specular", "m_shininess", "m_env", "scratch_amount", "cavity_coef",
    "plastic", "p_r", "p_g", "p_b", "p_diffuse", "p_specular", "p_shininess", "p_env",
)
_I = {name: i for i, name in enumerate(PARAMS)}


def params_vector(values: dict | None = None, /, **more: float) -> np.ndarray:
    """float64 vector of :data:`PARAMS` from a dict and / or keywords (missing names are 0).
    Raises KeyError naming an unknown parameter."""
    d = {**(values or {}), **more}
    unknown = d.keys() - _I.keys()
    if unknown:
        raise KeyError(f"unknown shading parameter(s) {sorted(unknown)}; valid: {list(PARAMS)}")
    return np.array([d.get(name, 0.0) for name in PARAMS], np.float64)


_NO_METAL = (0.0,) * 15
_NO_PLASTIC = (0.0,) * 8


def pack_params(rotation: tuple[float, float, float, float], light: tuple[float, float, float],
                env_centre: tuple[float, float], brightness: float, metal: tuple | None = None,
                plastic: tuple | None = None, env_gain: float = 0.8, ambient: float = 0.25) -> np.ndarray:
    """The kernel's :data:`PARAMS` vector from plain floats, positionally (what
    :func:`params_vector` builds from names; the renderer's per-object path, ~10 dict operations
    fewer). ``rotation`` = (r00, r01, r10, r11); ``light`` unit (lx, ly, lz), the Blinn half vector
    for the viewer (0, 0, 1) is derived here; ``metal`` = (m_r, m_g, m_b, m_streak, m_wear, rust_r,
    rust_g, rust_b, m_diffuse, m_specular, m_shininess, m_env, scratch_amount, cavity_coef) or None;
    ``plastic`` = (p_r, p_g, p_b, p_diffuse, p_specular, p_shininess, p_env) or None.
    Raises ValueError on a wrong tuple length."""
    lx, ly, lz = light
    hn = math.sqrt(lx * lx + ly * ly + (lz + 1.0) ** 2)
    v = [*rotation, lx, ly, lz, lx / hn, ly / hn, (lz + 1.0) / hn, env_centre[0], env_centre[1], env_gain, ambient,
         brightness]
    if metal is not None and len(metal) != 14 or plastic is not None and len(plastic) != 7:
        raise ValueError("pack_params: metal takes 14 values and plastic 7 (see the docstring)")
    v += _NO_METAL if metal is None else (1.0, *metal)
    v += _NO_PLASTIC if plastic is None else (1.0, *plastic)
    if len(v) != len(PARAMS):
        raise ValueError(f"pack_params: rotation takes 4 values, light 3 and env_centre 2, got {len(v)} in all")
    return np.array(v, np.float64)


_INT16 = np.dtype(np.int16)
_ABSENT = np.empty(0, np.int16)
_ABSENT.flags.writeable = False


def quantize(a: np.ndarray | None, scale: float) -> np.ndarray:
    """(N,) float array -> read-only int16 codes ``round(a / scale)``, saturated at +-32767 (the
    kernel input format); int16 input is taken as already quantized (a cached relief) and passed
    through read-only; None -> an empty array (the kernel's "absent"). Always read-only, so the
    kernel is compiled for one set of argument types."""
    if a is None:
        return _ABSENT
    if a.dtype is not _INT16:
        a = np.clip(np.rint(a * np.float32(1.0 / scale)), -32767, 32767).astype(np.int16)
    elif not a.flags.writeable:  # the cached case: nothing to do
        return a
    else:
        a = a.view()
    a.flags.writeable = False
    return a


def dequantize(q: np.ndarray | None, scale: float) -> np.ndarray | None:
    """int16 codes -> float32 values (``q * scale``); float input is returned as is; None -> None."""
    if q is None or q.dtype != np.int16:
        return q
    return q.astype(np.float32) * np.float32(scale)


_POW_LUT = 1024  # entries of the specular power table (over n.h in [0, 1], nearest entry)


@kernel
def _pow_table(shininess, n):
    """``x ** shininess`` at x = j / (n - 1), j = 0..n-1 (float64 (n,))."""
    t = np.empty(n)
    for j in range(n):
        t[j] = (j / (n - 1.0)) ** shininess
    return t


@kernel
def _blinn(nx, ny, nz, lx, ly, lz, hx, hy, hz, shininess, table):
    """(max(n.l, 0), clamp(n.h, 0, 1) ** shininess): the power from ``table`` (``_pow_table``) when
    it is not empty, else computed (small objects: building the table would cost more)."""
    ndl = nx * lx + ny * ly + nz * lz
    if ndl < 0.0:
        ndl = 0.0
    ndh = nx * hx + ny * hy + nz * hz
    if ndh < 0.0:
        ndh = 0.0
    elif ndh > 1.0:
        ndh = 1.0
    if table.size:
        return ndl, table[int(ndh * (table.size - 1) + 0.5)]
    return ndl, ndh ** shininess


@kernel
def _metal_rgb(prm, s, b, scr, cav, nx, ny, nz, e0, e1, e2, grazing, table):
    """Linear RGB of a metal pixel (see :func:`shade_pixels`): streak value ``s``, tarnish ``b``,
    scratch coverage ``scr`` (0: none), cavity depth ``cav`` (0: none), normal, environment texel,
    grazing factor and the ``_pow_table`` of the metal's shininess (or empty)."""
    mr, mg, mb, mk, mw = prm[16], prm[17], prm[18], prm[19], prm[20]
    rr, rg, rb = prm[21], prm[22], prm[23]
    mdif, mspe, mshi, menv, samt, ccoef = prm[24], prm[25], prm[26], prm[27], prm[28], prm[29]
    w = b * mw
    w = 0.0 if w < 0.0 else (1.0 if w > 1.0 else w)
    ks = 1.0 + mk * s
    a0 = mr * ks * (1.0 - w) + rr * w
    a1 = mg * ks * (1.0 - w) + rg * w
    a2 = mb * ks * (1.0 - w) + rb * w
    smap = ks - 0.8 * w
    if smap < 0.1:
        smap = 0.1
    ndl, sp = _blinn(nx, ny, nz, prm[4], prm[5], prm[6], prm[7], prm[8], prm[9], mshi, table)
    lit = prm[13] + mdif * ndl
    sp = sp * mspe * smap
    fres = menv * grazing * smap
    c0 = a0 * lit * 0.55 + e0 * fres * (0.75 * a0 + 0.25) + sp * (0.5 * a0 + 0.5)
    c1 = a1 * lit * 0.55 + e1 * fres * (0.75 * a1 + 0.25) + sp * (0.5 * a1 + 0.5)
    c2 = a2 * lit * 0.55 + e2 * fres * (0.75 * a2 + 0.25) + sp * (0.5 * a2 + 0.5)
    if scr != 0.0:
        sc = scr * samt
        c0 += sc * (0.5 + 0.5 * mr)
        c1 += sc * (0.5 + 0.5 * mg)
        c2 += sc * (0.5 + 0.5 * mb)
    if cav != 0.0:
        d = math.exp(cav * ccoef)
        c0 *= d
        c1 *= d
        c2 *= d
    return c0, c1, c2


@kernel
def _plastic_rgb(prm, nx, ny, nz, e0, e1, e2, grazing, table):
    """Linear RGB of a plastic pixel (see :func:`shade_pixels`); reflections stay white."""
    pr, pg, pb, pdif, pspe, pshi, penv = prm[31], prm[32], prm[33], prm[34], prm[35], prm[36], prm[37]
    ndl, sp = _blinn(nx, ny, nz, prm[4], prm[5], prm[6], prm[7], prm[8], prm[9], pshi, table)
    lit = prm[13] + pdif * ndl
    sp = sp * pspe
    fres = penv * grazing
    return pr * lit + e0 * fres + sp, pg * lit + e1 * fres + sp, pb * lit + e2 * fres + sp


@kernel
def shade_pixels(out_idx, nx_, ny_, nz_, st_, bl_, scr_, cav_, top_, pw_, env, prm, out):
    """Shade N pixels into ``out`` (uint8 (h, w, 4) crop, RGB written, alpha untouched).

    Args:
        out_idx: int32 (N,) flat pixel indices into ``out`` (h * w); the pixels to shade.
        nx_, ny_, nz_: int16 (N,) unit normals (canonical frame), :data:`Q_UNIT` codes.
        st_, bl_: int16 (N,) brushed-streak / tarnish texture values, :data:`Q_TEXTURE` codes
            (metal; may be empty).
        scr_: scratch coverage 0..1 (:data:`Q_UNIT`) or empty; cav_: cavity depth (:data:`Q_CAVITY`)
            or empty; top_: top-face ratio (side wall darkening, :data:`Q_UNIT`) or empty; pw_:
            plastic weight (:data:`Q_UNIT`) of an object with both materials (metal key with a
            rubber head), or empty (one material everywhere).
        env: float32 (3, eh, ew) planar sphere map in [0, 1].
        prm: float64 vector of :data:`PARAMS`.

    Model per pixel (n = R n_canonical): metal albedo ``a = base (1 + k s)`` blended with rust by
    the wear ``w = clip(W b, 0, 1)``; specular map ``m = max(1 + k s - 0.8 w, 0.1)``; Blinn-Phong
    ``L = ambient + diffuse max(n.l, 0)``, ``spec = specular clamp(n.h)^shininess m``; sphere-map
    reflection ``E[0.5 + gain/2 n_xy]`` with Fresnel-like ``env (1.6 - 0.6 n_z) m``; metal colour
    ``0.55 a L + E fres (0.75 a + 0.25) + spec (0.5 a + 0.5) + scratches``, darkened by
    ``exp(cavity_coef depth)``; plastic ``p L + E fres + spec`` (white reflections), mixed in by
    the plastic weight (each material is only evaluated where its weight is > 0); x brightness; side wall x ``(0.4 + 0.6 top)``; -> round(255 c), saturated.
    """
    r00, r01, r10, r11 = prm[0], prm[1], prm[2], prm[3]
    ecx, ecy, egain, bright = prm[10], prm[11], prm[12], prm[14]
    metal = prm[15] > 0.5
    plastic = prm[30] > 0.5
    has_scr = scr_.size > 0
    has_cav = cav_.size > 0
    has_top = top_.size > 0
    has_pw = pw_.size > 0
    eh, ew = env.shape[1], env.shape[2]
    qu, qt, qc = Q_UNIT, Q_TEXTURE, Q_CAVITY
    n = out_idx.size
    none = np.empty(0)
    m_table = _pow_table(prm[26], _POW_LUT) if metal and n > _POW_LUT else none
    p_table = _pow_table(prm[36], _POW_LUT) if plastic and n > _POW_LUT else none
    o = out.reshape(-1)
    for i in range(n):
        cx = nx_[i] * qu
        cy = ny_[i] * qu
        nz = nz_[i] * qu
        nx = cx * r00 + cy * r01
        ny = cx * r10 + cy * r11
        # environment (sphere map, nearest texel)
        fx = (ecx + egain * 0.5 * nx) * (ew - 1) + 0.5
        fy = (ecy + egain * 0.5 * ny) * (eh - 1) + 0.5
        ix = 0 if fx < 0.0 else (ew - 1 if fx > ew - 1 else int(fx))
        iy = 0 if fy < 0.0 else (eh - 1 if fy > eh - 1 else int(fy))
        e0, e1, e2 = env[0, iy, ix], env[1, iy, ix], env[2, iy, ix]
        grazing = 1.6 - 0.6 * nz
        c0 = c1 = c2 = 0.0
        t = pw_[i] * qu if has_pw and metal else (0.0 if metal else 1.0)  # plastic weight of this pixel
        if metal and t < 1.0:
            scr = scr_[i] * qu if has_scr else 0.0
            cav = cav_[i] * qc if has_cav else 0.0
            c0, c1, c2 = _metal_rgb(prm, st_[i] * qt, bl_[i] * qt, scr, cav, nx, ny, nz, e0, e1, e2, grazing,
                                    m_table)
        if plastic and t > 0.0:
            p0, p1, p2 = _plastic_rgb(prm, nx, ny, nz, e0, e1, e2, grazing, p_table)
            if metal and t < 1.0:
                c0 += (p0 - c0) * t
                c1 += (p1 - c1) * t
                c2 += (p2 - c2) * t
            else:
                c0, c1, c2 = p0, p1, p2
        g = bright
        if has_top:
            g = g * (0.4 + 0.6 * top_[i] * qu)
        p = out_idx[i] * 4
        v = c0 * g * 255.0 + 0.5
        o[p] = 0 if v < 0.0 else (255 if v >= 255.0 else np.uint8(v))
        v = c1 * g * 255.0 + 0.5
        o[p + 1] = 0 if v < 0.0 else (255 if v >= 255.0 else np.uint8(v))
        v = c2 * g * 255.0 + 0.5
        o[p + 2] = 0 if v < 0.0 else (255 if v >= 255.0 else np.uint8(v))
