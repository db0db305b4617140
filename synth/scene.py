"""``SampleRenderer``: one synthetic key photo (image, mask, instances, meta) per (index, run_seed).

Scene recipe (domain randomisation, Tobin et al. 2017; cut-paste, Dwibedi et al. 2017; copy-paste
with occlusion-updated masks, Ghiasi et al. 2021): background -> distractors under -> ring halves
under -> keys (cast + contact shadow each, from ONE scene light) -> ring halves over ->
distractors over -> blobs / fingers over keys -> illumination gradient x exposure -> camera chain.
Every random part draws from its own ``synth.seeding.child_rng(seed, stream)`` so switching a
family off leaves the rest of the sample unchanged.

:meth:`SampleRenderer.render` reads as the recipe: ``_start_scene`` (seeds, background, light,
reflection env) -> :func:`synth.layout.sample_layout` -> ``_place_keys`` (each key rendered by its
source, then placed by its layout kind) -> ``_add_distractors`` / ``_add_rings`` /
``_add_occluders`` -> ``_composite`` (back to front, with shadows) -> ``_finish`` (illumination,
camera chain, labels, meta). A :class:`Scene` carries the sample between the phases.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from backgrounds.procedural import TEXTURE_CACHE

from .compose import Canvas, Layer, matmul3, rect_to_quad, rgba_to_layer, shadow_alpha, warp_layer
from .config import SynthConfig
from .meta import jsonable
from .keys.bank import ASSET_CACHE, note_bank_generation
from .seeding import asset_bank_seed, child_rng, loguniform, pick, sample_seed, uniform
from . import functional as F
from .keysources import blend_layer, make_keys, poisson_colour, relight_layer, sample_blend, sample_relight
from .layout import (Layout, PlacedKey, blade_frame, key_length_and_angle, place_cluster, place_crop, place_scatter,
                     sample_layout)
from .occluders import blob_layer, distractor_renderers, fallback_distractor, finger_layer, key_ring_layers

__all__ = ["SampleRenderer", "jsonable"]

MIN_KEY_RENDER_PX = 24.0
#: a key shrunk below this factor by its warp is first area-resized (bilinear sampling at under
#: 0.7x skips source pixels and aliases); 0.7 < 1 / sqrt(2), the largest shrink an asset-bank size
#: bucket needs, so banked keys go through one warp (``synth.keys.bank.BUCKETS_PER_OCTAVE``)
PRE_SHRINK_BELOW = 0.7


def _any_bank(c: SynthConfig) -> bool:
    """Whether any asset bank (keys, distractors, procedural backgrounds) is on."""
    return c.asset_bank_size > 0 or c.distractor_bank_size > 0 or c.background_bank_size > 0


class SampleRenderer:
    """Render samples per DESIGN.md's sample contract. Picklable; sources are built lazily.

    Args:
        config: SynthConfig (None = defaults).
        backgrounds: a ``BackgroundSource`` (None = ``make_backgrounds(config.backgrounds)``).
        keys: a key cut-out source with ``sample(rng, *, length_px, angle_deg, light_dir, env,
            shading)`` (and optionally ``sample_layers`` giving the metal-only label alpha);
            None = ``make_keys(config.key_source)``.
    """

    def __init__(self, config: SynthConfig | None = None, backgrounds=None, keys=None):
        self.config = config if config is not None else SynthConfig()
        if not isinstance(self.config, SynthConfig):
            raise TypeError(f"config must be a SynthConfig, got {type(self.config).__name__}")
        self._backgrounds = backgrounds
        self._keys = keys
        self._camera = None
        self._distract = None

    def __getstate__(self):
        st = self.__dict__.copy()
        st["_camera"] = None
        st["_distract"] = None
        return st

    @property
    def index_block(self) -> int:
        """Consecutive indices that share an asset-bank generation (``asset_bank_refresh``; 1 with
        every bank off): a live stream deals whole blocks to its workers so their caches keep
        hitting (``train.stream.worker_index``)."""
        return self.config.asset_bank_refresh if _any_bank(self.config) else 1

    @property
    def backgrounds(self):
        if self._backgrounds is None:
            from backgrounds import make_backgrounds

            self._backgrounds = make_backgrounds(self.config.backgrounds)
        return self._backgrounds

    @property
    def keys(self):
        if self._keys is None:
            c = self.config
            self._keys = make_keys(c.key_source, c.key_kinds, c.key_materials)
        return self._keys

    @property
    def camera(self):
        if self._camera is None:
            from .camera import CameraChain

            self._camera = CameraChain(self.config)
        return self._camera

    # ------------------------------------------------------------------ pieces
    def _key_layer(self, rng, L, angle, light, env, S, bank_seed=None, shading=True):
        """Render one key of long side L px (any size: tiny keys are rendered larger and shrunk),
        perspective-jitter it; -> (Layer at x0=y0=0, hole_xy in layer px or None, meta).
        With ``bank_seed`` (and a source with ``sample_asset``) the key comes from the asset bank in
        canonical orientation and its rotation is folded into the same single warp."""
        c = self.config
        Lr = max(L, MIN_KEY_RENDER_PX)
        src = self.keys
        source_id = None
        if hasattr(src, "pick"):  # mixed sources: one draw per key
            source_id, src = src.pick(rng)
        A = None  # cut-out px -> nominal (rotated, render-size) frame
        if bank_seed is not None and hasattr(src, "sample_asset"):
            rgba, lab, km, A, (h, w) = src.sample_asset(rng, length_px=Lr, angle_deg=angle, light_dir=light, env=env,
                                                        shading=shading, bank_seed=bank_seed,
                                                        bank_size=c.asset_bank_size)
        elif hasattr(src, "sample_layers"):
            rgba, lab, km = src.sample_layers(rng, length_px=Lr, angle_deg=angle, light_dir=light, env=env,
                                              shading=shading, max_upscale=c.cutout_max_upscale)
            if km.get("upscale_capped"):
                Lr = km["length_px"]  # the cut-out is drawn shorter than the layout asked
                L = min(L, Lr)
        else:
            rgba, km = src.sample(rng, length_px=Lr, angle_deg=angle, light_dir=light, env=env, shading=shading)
            lab = None
        if A is None:
            h, w = rgba.shape[:2]
        hole = km.get("hole_xy")
        # projective jitter (+ foreshortening + downscale for tiny keys) as one warp
        s = L / Lr
        jit = uniform(rng, *c.perspective_range)
        asp = uniform(rng, *c.aspect_jitter_range)
        d = (rng.uniform(-jit, jit, (4, 2)) * max(h, w)).tolist()
        ang = math.radians(uniform(rng, 0, 180))
        ux, uy = math.cos(ang), math.sin(ang)  # foreshortening axis
        dst = []
        for (x, y), (ddx, ddy) in zip(((0, 0), (w, 0), (w, h), (0, h)), d):
            rx, ry = x - w / 2, y - h / 2
            t = (rx * ux + ry * uy) * (asp - 1)
            dst.append([(rx + t * ux + ddx) * s, (ry + t * uy + ddy) * s])
        mx, my = min(p[0] for p in dst) - 1, min(p[1] for p in dst) - 1
        dst = [[x - mx, y - my] for x, y in dst]
        M = rect_to_quad(w, h, dst)
        ow, oh = math.ceil(max(p[0] for p in dst)) + 2, math.ceil(max(p[1] for p in dst)) + 2
        if A is not None:
            M = matmul3(M, A.tolist())  # the 2x3 affine as a 3x3 projective
            s = s * math.hypot(A[0, 0], A[0, 1])
        if hole is not None:
            hx, hy = hole[0], hole[1]
            q = [r[0] * hx + r[1] * hy + r[2] for r in M]
            hole = [q[0] / q[2], q[1] / q[2]]
        hc, wc = rgba.shape[:2]
        if s < PRE_SHRINK_BELOW:  # strong shrink: pre-area-resize so the bilinear warp does not alias
            small = cv2.resize(rgba, (max(2, int(round(wc * s))), max(2, int(round(hc * s)))), interpolation=cv2.INTER_AREA)
            lab_s = None if lab is None else cv2.resize(lab, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
            sx, sy = small.shape[1] / wc, small.shape[0] / hc
            rgba, lab = small, lab_s
            M = [[r[0] / sx, r[1] / sy, r[2]] for r in M]  # == M @ diag(1 / sx, 1 / sy, 1)
        layer = warp_layer(rgba_to_layer(rgba, lab), np.array(M, np.float64), (oh, ow))
        km = {k: v for k, v in km.items() if k not in ("render",)}
        km.update({"length_px": L, "render_length_px": Lr, "angle_deg": angle, "perspective": jit, "aspect": asp})
        if source_id is not None:
            km["source"] = self.keys.names[source_id]
        if km.get("kind") == "cutout":
            layer = self._cutout_look(layer, rng, light, km)
        return layer, hole, km

    def _cutout_look(self, layer, rng, light, km):
        """Mirror (half the time), re-light to the scene and edge-blend a photographed cut-out
        (synth.keysources); the label follows the mirror, never the blend."""
        c = self.config
        rgba = layer.rgba if layer.rgba is not None else np.dstack([layer.rgb, layer.alpha])
        label = layer.label
        km["flip"] = bool(rng.random() < 0.5)  # a mirrored key is still a key (left/right bittings)
        if km["flip"]:
            rgba = np.ascontiguousarray(rgba[:, ::-1])
            label = None if label is None else np.ascontiguousarray(label[:, ::-1])
        if c.cutout_relight:
            rp = sample_relight(rng, light, c.lighting_gradient_range[1])
            relight_layer(rgba, rp)
            km["relight"] = {k: v for k, v in rp.items() if k != "azimuth"}
        bp = sample_blend(rng, c.cutout_blend_weights)
        rgba, lab, pad = blend_layer(rgba, label, bp)
        km["blend"] = bp
        return Layer.from_rgba(rgba, layer.x0 - pad, layer.y0 - pad, lab)

    def _shadow(self, canvas, layer, rng, light, L, lift=1.0):
        """Cast + contact shadow of ``layer`` on the canvas (before pasting it)."""
        c = self.config
        if not (c.shadows and rng.random() < c.shadow_prob):
            return None
        lx, ly, lz = light
        n = math.hypot(lx, ly) or 1.0
        cot = min(3.0, math.hypot(lx, ly) / max(lz, 0.2))
        off = uniform(rng, *c.shadow_offset_range) * L * cot * lift
        sig = uniform(rng, *c.shadow_blur_range) * L * lift + 0.6
        st = uniform(rng, *c.shadow_strength_range)
        dx, dy = -lx / n * off, -ly / n * off
        pad = int(math.ceil(3 * sig)) + 1
        a = layer.alpha
        sa = shadow_alpha(a, sig, pad)
        tint = (1.0, 1.0, 0.92) if rng.random() < 0.5 else None
        canvas.darken(sa, int(round(layer.x0 - pad + dx)), int(round(layer.y0 - pad + dy)), st, tint)
        cst = 0.0
        if lift <= 1.0:
            cst = uniform(rng, *c.contact_shadow_strength_range)
            csig = 0.5 + 0.004 * L
            cp = int(math.ceil(3 * csig)) + 1
            ca = shadow_alpha(a, csig, cp)
            canvas.darken(ca, layer.x0 - cp, layer.y0 - cp, cst)
        return {"offset_px": off, "blur_px": sig, "strength": st, "contact_strength": cst}

    # ------------------------------------------------------------------ main
    def render(self, index: int, run_seed: int, debug: bool = False) -> dict:
        """Render sample ``index`` of run ``run_seed``.

        Returns:
            dict with ``image`` uint8 (S, S, 3) RGB, ``mask`` uint8 (S, S) {0,1} (255 on the ignore
            band if enabled), ``instances`` uint16 (S, S), ``meta`` (JSON-serialisable: seed, index,
            run_seed, every sampled parameter). With ``debug=True`` also ``key_alpha`` float32 (S, S):
            the keys' label coverage composited over each other but BEFORE any non-key occluder,
            and ``coverage``: the total visible key coverage after everything
            (mask == coverage >= 0.5, except keys dropped by ``min_visible_px``).
        """
        sc = self._start_scene(index, run_seed)
        r_lay = child_rng(sc.seed, "layout")
        sc.layout = sample_layout(r_lay, self.config, sc.size)
        self._place_keys(sc, r_lay, child_rng(sc.seed, "keys"))
        if self.config.occluders:
            self._add_distractors(sc, child_rng(sc.seed, "negatives"))
            self._add_rings(sc, child_rng(sc.seed, "rings"))
            self._add_occluders(sc, child_rng(sc.seed, "occluders"))
        key_alpha = self._composite(sc, child_rng(sc.seed, "shadows"), debug)
        return self._finish(sc, key_alpha, debug)

    def _start_scene(self, index: int, run_seed: int) -> "Scene":
        """Seeds, asset-bank generation, background, scene light, reflection env, shaded or flat look."""
        c = self.config
        seed = sample_seed(run_seed, index)
        S = c.size
        bank_seed = None
        if _any_bank(c):
            bank_seed = asset_bank_seed(run_seed, index // c.asset_bank_refresh)
            if ASSET_CACHE.budget != c.asset_cache_mib << 20:
                ASSET_CACHE.set_budget(c.asset_cache_mib)
            note_bank_generation(bank_seed, (ASSET_CACHE, TEXTURE_CACHE))
        bsrc = self.backgrounds
        if bank_seed is not None and c.background_bank_size > 0 and hasattr(bsrc, "sample_banked"):
            bg, bg_meta = bsrc.sample_banked(child_rng(seed, "background"), (S, S), bank_seed=bank_seed,
                                             bank_size=c.background_bank_size)
        else:
            bg, bg_meta = bsrc.sample(child_rng(seed, "background"), (S, S))
        if bg.shape != (S, S, 3) or bg.dtype != np.uint8:
            raise ValueError(f"background source {self.backgrounds!r} returned {bg.dtype} {bg.shape}, expected uint8 {(S, S, 3)}")
        r_light = child_rng(seed, "light")
        az = uniform(r_light, 0, 360)
        el = uniform(r_light, *c.light_elevation_range)
        ca, sa_, ce, se = math.cos(math.radians(az)), math.sin(math.radians(az)), math.cos(math.radians(el)), math.sin(math.radians(el))
        light = (ce * ca, ce * sa_, se)
        # reflection environment: the background point-sampled at 64 x 64, box-blurred (81 samples
        # averaged, so an area resize, 0.1-0.35 ms, would change nothing visible)
        env = cv2.blur(cv2.resize(bg, (64, 64), interpolation=cv2.INTER_NEAREST), (9, 9))
        env.flags.writeable = False  # read-only: the keys' shading memoises its planar version by identity
        shading = c.shading and not (c.flat_shading_prob > 0 and child_rng(seed, "look").random() < c.flat_shading_prob)
        return Scene(seed=seed, index=int(index), run_seed=int(run_seed), size=S, bank_seed=bank_seed,
                     background=bg_meta, light_angles=(az, el), light=light, r_light=r_light, env=env,
                     canvas=Canvas(bg), shading=bool(shading))

    def _place_keys(self, sc: "Scene", r_lay, r_keys) -> None:
        """Render the layout's keys and place each by its layout kind (:mod:`synth.layout`)."""
        c, S, layout = self.config, sc.size, sc.layout
        delta = None  # cluster: the first key's offset between blade direction and rotation
        for k in range(layout.n):
            L, angle, phi = key_length_and_angle(r_lay, layout, k, S, delta)
            layer, hole, km = self._key_layer(r_keys, L, angle, sc.light, sc.env, S,
                                              sc.bank_seed if c.asset_bank_size > 0 else None, sc.shading)
            L = km["length_px"]  # shorter than drawn for a small cut-out (``cutout_max_upscale``)
            h, w = layer.alpha.shape
            hx, hy, bx, by = blade_frame(w, h, hole, angle, L)
            if layout.mode == "cluster":
                if delta is None:
                    delta = math.degrees(math.atan2(-by, bx)) - angle
                px, py = place_cluster(layout, phi, hx, hy)
            elif layout.mode == "crop":
                px, py = place_crop(r_lay, c, S, L, w, h, km)
            else:
                px, py = place_scatter(r_lay, c, S, w, h, km)
            layer.x0, layer.y0 = int(round(px)), int(round(py))
            km["xy"] = [layer.x0, layer.y0]
            sc.keys.append(PlacedKey(layer, [hx + layer.x0, hy + layer.y0], (bx, by), L, km))

    def _add_distractors(self, sc: "Scene", r_neg) -> None:
        """Hard negatives (coins, clips, fobs, ...; mask 0), 30 % of them over the keys."""
        c, S = self.config, sc.size
        if self._distract is None:
            self._distract = distractor_renderers(c.distractor_kinds)
        fn, kinds, asset_fn = self._distract
        nd = int(r_neg.integers(c.n_distractors_range[0], c.n_distractors_range[1] + 1))
        for _ in range(nd):
            kind = str(pick(r_neg, kinds))
            size_px = max(8.0, loguniform(r_neg, *c.distractor_size_range) * S)
            ang_d = uniform(r_neg, 0, 360)
            # the scene's env (like keys): consistent reflections, and no per-object synthetic room
            if fn is fallback_distractor:
                rgba, dm = fn(r_neg, kind, size_px=size_px, angle_deg=ang_d, light_dir=sc.light, shading=sc.shading)
                lay = rgba_to_layer(rgba)
            elif sc.bank_seed is not None and c.distractor_bank_size > 0:  # cached geometry, re-lit; one warp
                rgba, dm, A, out_hw = asset_fn(r_neg, kind, size_px=size_px, angle_deg=ang_d, light_dir=sc.light,
                                               shading=sc.shading, env=sc.env, bank_seed=sc.bank_seed,
                                               bank_size=c.distractor_bank_size)
                lay = warp_layer(rgba_to_layer(rgba), A, out_hw)
            else:
                rgba, dm = fn(r_neg, kind, size_px=size_px, angle_deg=ang_d, light_dir=sc.light, shading=sc.shading,
                              env=sc.env)
                lay = rgba_to_layer(rgba)
            hh, ww = lay.alpha.shape
            lay.x0 = int(uniform(r_neg, -ww * 0.3, S - ww * 0.7))
            lay.y0 = int(uniform(r_neg, -hh * 0.3, S - hh * 0.7))
            over = bool(r_neg.random() < 0.3)
            (sc.over_d if over else sc.under_d).append((lay, size_px))
            sc.neg_meta.append({"kind": kind, "size_px": size_px, "over_keys": over, "xy": [lay.x0, lay.y0],
                                **{k: v for k, v in dm.items() if k != "kind"}})

    def _add_rings(self, sc: "Scene", r_ring) -> None:
        """Key rings through bow holes: one ring holding a cluster, else per key with ``key_ring_prob``."""
        c = self.config
        if sc.layout.mode == "cluster" and sc.keys:
            first = sc.keys[0]
            ctr_r = np.array(sc.layout.ring["centre"])
            hole_dir = (np.array(first.hole) - ctr_r)
            hole_dir = hole_dir / (np.linalg.norm(hole_dir) or 1)
            rings = [key_ring_layers(r_ring, first.hole, tuple(hole_dir), first.length_px, sc.light, sc.shading,
                                     radius=sc.layout.ring["radius"])]
        else:
            rings = [key_ring_layers(r_ring, key.hole, key.blade_dir, key.length_px, sc.light, sc.shading)
                     for key in sc.keys if r_ring.random() < c.key_ring_prob and key.meta.get("hole_xy") is not None]
        for under, over, rm in rings:
            sc.rings_under.append(under)
            sc.rings_over.append(over)
            sc.occ_meta.append({"type": "ring", **rm})

    def _add_occluders(self, sc: "Scene", r_occ) -> None:
        """Fingers over a key (``hand_prob``) and a generic object edge across one (``blob_occluder_prob``)."""
        c, S = self.config, sc.size
        if sc.keys and r_occ.random() < c.hand_prob:
            key = pick(r_occ, sc.keys)
            lay, L = key.layer, key.length_px
            ys, xs = np.nonzero(lay.alpha > 0.5)
            if len(xs):
                nf = 1 + int(r_occ.random() < 0.4)
                for _ in range(nf):
                    j = int(r_occ.integers(len(xs)))
                    tip = (xs[j] + lay.x0, ys[j] + lay.y0)
                    t = uniform(r_occ, 0, 2 * math.pi)
                    width = max(3.0, L * uniform(r_occ, 0.22, 0.45))
                    fl, fm = finger_layer(r_occ, tip, (math.cos(t), math.sin(t)), width, 1.5 * S, sc.light, sc.shading, (S, S))
                    sc.tops.append(fl)
                    sc.occ_meta.append({"type": "finger", "tip": [float(tip[0]), float(tip[1])], "dir_rad": t, **fm})
        if sc.keys and r_occ.random() < c.blob_occluder_prob:
            key = pick(r_occ, sc.keys)
            hh, ww = key.layer.alpha.shape
            ctr = (key.layer.x0 + ww * uniform(r_occ, 0, 1), key.layer.y0 + hh * uniform(r_occ, 0, 1))
            rad = key.length_px * uniform(r_occ, 0.2, 0.6)
            bl, bm = blob_layer(r_occ, ctr, rad, sc.light, sc.shading)
            sc.tops.append(bl)
            sc.occ_meta.append({"type": "blob", "centre": list(ctr), **bm})

    def _composite(self, sc: "Scene", r_sh, debug: bool) -> np.ndarray | None:
        """Paste back to front with shadows: distractors under, ring halves under, keys, ring halves
        over, distractors over, fingers and blobs. Returns the keys-only label coverage (debug)."""
        canvas, light, S = sc.canvas, sc.light, sc.size
        for lay, sz in sc.under_d:
            self._shadow(canvas, lay, r_sh, light, sz)
            canvas.paste(lay)
        for lay in sc.rings_under:
            canvas.paste(lay)
        key_alpha = np.zeros((S, S), np.float32) if debug else None
        for k, key in enumerate(sc.keys, start=1):
            lay = key.layer
            sc.shadow_meta.append(self._shadow(canvas, lay, r_sh, light, key.length_px))
            if key.meta.get("blend", {}).get("mode") == "poisson":
                new = poisson_colour(canvas.img, lay.rgba, lay.x0, lay.y0)
                if new is not None:
                    lay = Layer.from_rgba(new, lay.x0, lay.y0, lay.label)
            canvas.paste(lay, key_id=k)
            if debug and k in canvas.cov:  # keys-only "over" composite of the label coverage
                x0, y0, cov = canvas.cov[k]
                h_, w_ = cov.shape
                va = lay.alpha[y0 - lay.y0:y0 - lay.y0 + h_, x0 - lay.x0:x0 - lay.x0 + w_]
                ka = key_alpha[y0:y0 + h_, x0:x0 + w_]
                ka *= 1.0 - va
                ka += cov
        for lay in sc.rings_over:
            canvas.paste(lay)
        for lay, sz in sc.over_d:
            self._shadow(canvas, lay, r_sh, light, sz)
            canvas.paste(lay)
        for lay in sc.tops:
            self._shadow(canvas, lay, r_sh, light, float(max(lay.alpha.shape)) * 0.3, lift=2.0)
            canvas.paste(lay)
        return key_alpha

    def _finish(self, sc: "Scene", key_alpha, debug: bool) -> dict:
        """Illumination gradient x exposure, the camera chain, labels and the sample's meta."""
        c, S, canvas = self.config, sc.size, sc.canvas
        amp = uniform(sc.r_light, *c.lighting_gradient_range)
        amb = uniform(sc.r_light, *c.ambient_range)
        # illumination gradient x exposure as one low-res gain map, applied by the camera chain in the
        # same pass as its vignette and the float -> uint8 conversion
        gain = None
        if amp > 0 or abs(amb - 1) > 1e-3:
            gain = F.gradient_gain((S, S), amp, sc.light[0], sc.light[1], scale=amb)
        sc.illumination = {"gradient_amplitude": amp, "exposure": amb}
        if c.camera:
            image, cam_meta = self.camera(canvas.img, child_rng(sc.seed, "camera"), gain)
        else:
            image, cam_meta = F.apply_gain(canvas.img, gain, out_uint8=True), {}
        sc.camera = cam_meta
        mask, inst, counts = canvas.labels(c.ignore_band, c.ignore_band_px, c.min_visible_px)
        out = {"image": image, "mask": mask, "instances": inst, "meta": jsonable(sc.to_meta(counts))}
        if debug:
            cov = np.zeros((S, S), np.float32)
            for k, (x0, y0, cv) in canvas.cov.items():
                h_, w_ = cv.shape
                cov[y0:y0 + h_, x0:x0 + w_] += cv
            out["key_alpha"] = key_alpha
            out["coverage"] = cov
        return out


@dataclasses.dataclass
class Scene:
    """One sample while it is built, and its meta (:meth:`to_meta`): seed, index, run seed and size;
    the asset-bank generation; the background's meta; the scene light (azimuth and elevation, deg,
    and the unit vector towards it) with the ``light`` random stream (also drawn at the end, for
    the illumination); the reflection env; the canvas; the layout and placed keys; the layers of
    distractors (under / over the keys), ring halves and top occluders; and what the last phases
    drew (shadows, illumination, camera)."""

    seed: int
    index: int
    run_seed: int
    size: int
    bank_seed: int | None
    background: dict
    light_angles: tuple
    light: tuple
    r_light: object
    env: np.ndarray
    canvas: Canvas
    shading: bool = True
    layout: Layout | None = None
    keys: list = dataclasses.field(default_factory=list)
    under_d: list = dataclasses.field(default_factory=list)
    over_d: list = dataclasses.field(default_factory=list)
    rings_under: list = dataclasses.field(default_factory=list)
    rings_over: list = dataclasses.field(default_factory=list)
    tops: list = dataclasses.field(default_factory=list)
    neg_meta: list = dataclasses.field(default_factory=list)
    occ_meta: list = dataclasses.field(default_factory=list)
    shadow_meta: list = dataclasses.field(default_factory=list)
    illumination: dict | None = None
    camera: dict | None = None

    def to_meta(self, visible: dict[int, int]) -> dict:
        """The sample's meta: every sampled parameter of the scene (``visible``: visible pixels per
        key id, from the canvas labels; a key without any gets instance id 0)."""
        keys, iid = [], 0
        for k, key in enumerate(self.keys, start=1):
            if k in visible:
                iid += 1
            keys.append({**key.meta, "instance_id": iid if k in visible else 0, "visible_px": visible.get(k, 0),
                         "shadow": self.shadow_meta[k - 1]})
        az, el = self.light_angles
        return {"seed": self.seed, "index": self.index, "run_seed": self.run_seed, "size": self.size,
                "background": self.background, "shading": self.shading,
                "light": {"azimuth_deg": az, "elevation_deg": el, "dir": list(self.light)},
                "mode": self.layout.mode, "key_scale": self.layout.scale, "illumination": self.illumination,
                "camera": self.camera, "keys": keys, "n_keys_visible": len(visible), "negatives": self.neg_meta,
                "occluders": self.occ_meta, "ring": self.layout.ring}
